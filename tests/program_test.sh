# Sourced by the tests that run the programs on Fashion-MNIST (programs_on_far.sh, crash_safety.sh,
# mpi/train_ranks.sh) after they set `work`: skips the test (exit 77) without the dataset, starts `work` empty, and
# gives `fail` (a failed check, counted in `status`) and `lines` (the non-empty lines of a file, 0 when it is absent).
data=/usr/share/datasets/fashion-mnist
if [ ! -d "$data" ]; then
  echo "skipped: $data is missing (install Debian's dataset-fashion-mnist)"
  exit 77
fi
rm -rf "$work"
mkdir -p "$work"
status=0
fail() {
  echo "FAILED: $*"
  status=1
}
lines() { if [ -f "$1" ]; then grep -c . "$1" || true; else echo 0; fi; }
