#!/usr/bin/env python3
"""siglite against PyTorch on the same work, side by side, in one invocation.

  python3 bench/compare.py train|infer|loss [--rounds 5] [--threads 2] [--siglite PATH] [--python PYTHON]
                           [--torch debian|pypi]

train  bench-tiny, batch 256: full training steps (forward, sigmoid loss, backward, AdamW lr 1e-3,
       betas (0.9, 0.95), weight decay 1e-4 on the weight matrices), pairs/s. Both sides start from the
       same weights and batch (siglite-bench --save-init), so their first losses must agree: a relative
       difference of 1e-3 or more stops the comparison with exit status 1.
infer  b16 image tower, batch 8, no graph: images/s, and the first embedding element of both sides.
loss   siglite's tiled sigmoid loss against the plain PyTorch one (n x n logits), forward + backward,
       at each --n (default 4096,16384; d 768): seconds, siglite's loss_over_gemm, peak memory beyond the
       inputs. A size whose n x n tensors cannot fit is reported as not runnable for PyTorch.

siglite-bench (bench/siglite_bench.cpp) and bench/torch_siglip.py run as separate processes, one after the
other, alternating which goes first from round to round, so each peak RSS is its own process's. Each round
prints a table; then the medians over the rounds, the ratios siglite / PyTorch, and a JSON summary as the
last line. For train and infer the medians include each side's model GFLOP/s (the GEMM FLOPs siglite-bench
counts, over the side's time) beside the rate of its own GEMM library on a 1024^3 product in the same runs,
what siglite would reach if every GEMM FLOP ran at its sgemm's 1024^3 rate, and what it would reach if its
step or pass took only the time of its products (its linear and attention ops timed alone, shape by shape,
by siglite-bench after its measured steps): the ratio no work outside the products can take siglite past.

Set-up, done when needed and said on stderr: Debian's python3-torch (apt) when --python is Debian's python3
and cannot import torch; a venv with transformers (`python -m venv --system-site-packages`, then `pip install
transformers==4.40.2`) when the chosen python cannot import it; and, when that torch does its float GEMMs in
the reference (netlib) BLAS, OpenBLAS from Debian's libopenblas0-openmp, unpacked (not installed) into a cache
folder and put first on PyTorch's LD_LIBRARY_PATH: the reference BLAS is about ten times slower, which would
measure the BLAS and not PyTorch (--blas system keeps it). --torch pypi measures PyPI's newest torch instead
(its MKL and oneDNN), from a venv made in the same cache folder on first use.
"""
import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TORCH_SCRIPT = os.path.join(HERE, "torch_siglip.py")
TRANSFORMERS = "transformers==4.40.2"  # the version tests/reference/make_model_golden.py uses; runs on torch 1.13
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "siglite-bench")


def note(msg):
    print(f"compare.py: {msg}", file=sys.stderr, flush=True)


def die(msg, code=2):
    print(f"compare.py: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def sudo():
    return [] if os.geteuid() == 0 else ["sudo"]


def apt_install(packages):
    note(f"installing Debian packages: {' '.join(packages)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo() + ["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(sudo() + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + packages,
                   check=True, env=env)


def probe(python, code, env=None):
    """stdout of `python -c code`, or None when it fails."""
    r = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env)
    return r.stdout.strip() if r.returncode == 0 else None


# ---------------------------------------------------------------------------------------------------
# Set-up

def ensure_torch(python):
    if probe(python, "import torch") is not None:
        return
    if os.path.realpath(python) == os.path.realpath("/usr/bin/python3"):
        apt_install(["python3-torch"])
        if probe(python, "import torch") is not None:
            return
    die(f"{python} cannot import torch (for Debian's python3: apt-get install python3-torch)")


def ensure_transformers(python, venv):
    """A python that imports both torch and transformers: `python` itself, or a venv made from it."""
    if probe(python, "import transformers") is not None:
        return python
    in_venv = probe(python, "import sys; print(int(sys.prefix != sys.base_prefix))") == "1"
    if in_venv:
        # A venv of a venv would not see the first one's packages (its torch): install into it.
        note(f"{python} cannot import transformers; installing {TRANSFORMERS} into its venv")
        subprocess.run([python, "-m", "pip", "install", "-q", TRANSFORMERS], check=True)
        return python
    if venv is None:
        if os.path.realpath(python) == os.path.realpath("/usr/bin/python3"):
            venv = "/tmp/hfenv"
        else:
            venv = "/tmp/hfenv-" + hashlib.sha1(os.path.realpath(python).encode()).hexdigest()[:8]
    vpy = os.path.join(venv, "bin", "python")
    if not (os.path.exists(vpy) and probe(vpy, "import torch, transformers") is not None):
        note(f"{python} cannot import transformers; creating the venv {venv} (--system-site-packages, so it "
             f"keeps {python}'s torch) with {TRANSFORMERS}")
        make_venv(python, venv, ["--system-site-packages"])
        subprocess.run([vpy, "-m", "pip", "install", "-q", TRANSFORMERS], check=True)
    if probe(vpy, "import torch, transformers") is None:
        die(f"{vpy} still cannot import torch and transformers")
    return vpy


def make_venv(python, venv, flags):
    r = subprocess.run([python, "-m", "venv"] + flags + [venv])
    if r.returncode != 0 and os.path.realpath(python) == os.path.realpath("/usr/bin/python3"):
        apt_install(["python3-venv"])  # Debian keeps ensurepip apart
        r = subprocess.run([python, "-m", "venv"] + flags + [venv])
    if r.returncode != 0:
        die(f"could not create the venv {venv} with {python}")


def pypi_torch_python():
    """The python of a venv in the cache holding PyPI's newest torch and TRANSFORMERS, made when missing. The
    venv is kept: delete it to pick up a newer torch release."""
    venv = os.path.join(CACHE, "torch-pypi")
    vpy = os.path.join(venv, "bin", "python")
    if os.path.exists(vpy) and probe(vpy, "import torch, transformers") is not None:
        return vpy
    note(f"creating the venv {venv} with PyPI's newest torch and {TRANSFORMERS} (about 3 GB: PyPI's torch "
         "brings its CUDA libraries, which a CPU run does not load)")
    os.makedirs(CACHE, exist_ok=True)
    make_venv("/usr/bin/python3", venv, [])
    subprocess.run([vpy, "-m", "pip", "install", "-q", "torch", TRANSFORMERS], check=True)
    if probe(vpy, "import torch, transformers") is None:
        die(f"{vpy} cannot import torch and transformers after installing them")
    return vpy


BLAS_PROBE = ("import torch, os\n"
              "torch.ones(64, 64) @ torch.ones(64, 64)\n"
              "p = [l.split()[-1] for l in open('/proc/self/maps') if 'blas' in os.path.basename(l.split()[-1])]\n"
              "print(os.path.realpath(p[0]) if p else '')")


def reference_blas(path):
    """Debian's netlib reference BLAS (package libblas3) lives in .../blas/libblas.so.3*."""
    return os.path.basename(os.path.dirname(path)) == "blas" and os.path.basename(path).startswith("libblas.so")


def openblas_dir():
    """OpenBLAS (OpenMP build, Debian's libopenblas0-openmp) unpacked under the cache: the folder that holds
    its libblas.so.3, for LD_LIBRARY_PATH. Nothing is installed system-wide."""
    root = os.path.join(CACHE, "openblas-openmp")
    libdir = os.path.join(root, "usr", "lib", "x86_64-linux-gnu", "openblas-openmp")
    if os.path.exists(os.path.join(libdir, "libblas.so.3")):
        return libdir
    os.makedirs(CACHE, exist_ok=True)
    note(f"fetching OpenBLAS (Debian libopenblas0-openmp, about 7 MB) into {root}")
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        r = subprocess.run(["apt-get", "download", "libopenblas0-openmp"], cwd=tmp, capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(sudo() + ["apt-get", "update", "-qq"], check=True)
            r = subprocess.run(["apt-get", "download", "libopenblas0-openmp"], cwd=tmp, capture_output=True, text=True)
        debs = [f for f in os.listdir(tmp) if f.endswith(".deb")]
        if r.returncode != 0 or not debs:
            die("apt-get download libopenblas0-openmp failed: " + r.stderr.strip())
        subprocess.run(["dpkg-deb", "-x", os.path.join(tmp, debs[0]), root], check=True)
    if not os.path.exists("/usr/lib/x86_64-linux-gnu/libgfortran.so.5"):
        apt_install(["libgfortran5"])  # OpenBLAS's only dependency beyond libc and libgomp
    return libdir


CORE_PROBE = ("import ctypes, torch, os\n"
              "torch.ones(64, 64) @ torch.ones(64, 64)\n"
              "p = [l.split()[-1] for l in open('/proc/self/maps') if 'openblas' in os.path.basename(l.split()[-1])]\n"
              "f = ctypes.CDLL(p[0]).openblas_get_corename if p else None\n"
              "if f: f.restype = ctypes.c_char_p\n"
              "print(f().decode() if f else '')")


OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

GEMM_PROBE = ("import time, torch\n"
              "a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)\n"
              "a @ b\n"
              "best = 1e30\n"
              "for _ in range(5):\n"
              "    t0 = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t0)\n"
              "print(2 * 1024 ** 3 / best / 1e9)")


def prescott_fix(python, env, core):
    """OpenBLAS picks its kernels from the CPU model, and a release older than the CPU falls back to its generic
    'Prescott' (SSE3) ones: Debian 12's 0.3.21 does so on Sapphire/Emerald Rapids and ran a 1024^3 product at
    26 GFLOP/s on one thread there, against 117 with its SkylakeX (AVX-512) kernels. Then this sets
    OPENBLAS_CORETYPE in env to the newest kernel set the CPU's flags allow; returns the kernels' name."""
    if not core or core.lower() != "prescott" or "OPENBLAS_CORETYPE" in env:
        return core
    with open("/proc/cpuinfo") as f:
        flags = set(next((l for l in f if l.startswith("flags")), "").split())
    want = "SkylakeX" if "avx512f" in flags else "Haswell" if "avx2" in flags else None
    if not want:
        return core
    env["OPENBLAS_CORETYPE"] = want
    note(f"OpenBLAS did not recognise this CPU and chose its generic Prescott kernels; setting "
         f"OPENBLAS_CORETYPE={want} for PyTorch")
    return probe(python, CORE_PROBE, env) or core


def openblas_core(python, env):
    """Chooses PyTorch's OpenBLAS kernels in env and returns their name. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
    inherited from the caller's environment (some machines set them for old OpenBLAS builds) can hold OpenBLAS
    to older kernels than it would pick itself: then a 1024^3 product is timed with those settings and with
    OpenBLAS's own choice, and PyTorch runs with the faster, so the comparison is not against a slowed BLAS.
    (Both sides' losses or embeddings are still checked to agree.)"""
    inherited = {k: env[k] for k in OPENBLAS_VARS if k in env}
    kept_core = probe(python, CORE_PROBE, env)
    if not kept_core:
        return kept_core  # no OpenBLAS in this torch's process
    if not inherited:
        return prescott_fix(python, env, kept_core)
    own = {k: v for k, v in env.items() if k not in OPENBLAS_VARS}
    own_core = prescott_fix(python, own, probe(python, CORE_PROBE, own))
    rate = {}
    for name, e in (("inherited", env), ("own", own)):
        r = probe(python, GEMM_PROBE, e)
        rate[name] = float(r) if r else 0.0
    settings = " ".join(f"{k}={v}" for k, v in inherited.items())
    note(f"OpenBLAS with the inherited {settings}: {kept_core} kernels, {rate['inherited']:.0f} GFLOP/s on a "
         f"1024^3 product; with its own choice: {own_core} kernels, {rate['own']:.0f} GFLOP/s")
    if rate["own"] <= rate["inherited"]:
        return kept_core
    note(f"PyTorch runs without the inherited {settings} (the faster of the two)")
    for k in OPENBLAS_VARS:
        env.pop(k, None)
    env.update(own)
    return own_core


def torch_env(python, blas, threads):
    """(environment for the PyTorch runs, a description of its BLAS)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if probe(python, "import torch; assert torch.backends.mkl.is_available()", env) is not None:
        return env, "MKL, linked into torch"  # PyPI's wheels; a mapped libblas would be numpy's, not torch's
    lib = probe(python, BLAS_PROBE, env)
    if lib is None:
        die(f"{python} cannot run a torch matmul")
    if not reference_blas(lib):
        core = openblas_core(python, env)
        return env, (lib or "linked into torch") + (f" ({core} kernels)" if core else "")
    if blas == "system":
        note(f"WARNING: PyTorch's float GEMMs run in the reference BLAS {lib} (about 10x slower than an "
             "optimised one); the comparison measures that BLAS (--blas openblas avoids it)")
        return env, lib + " (reference BLAS)"
    libdir = openblas_dir()
    env["LD_LIBRARY_PATH"] = libdir + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    lib2 = probe(python, BLAS_PROBE, env)
    if not lib2 or reference_blas(lib2):
        die(f"OpenBLAS in {libdir} did not replace {lib} for {python}")
    note(f"PyTorch links the reference BLAS {lib}; running it with OpenBLAS {lib2} instead "
         "(LD_LIBRARY_PATH; --blas system to keep the reference one)")
    core = openblas_core(python, env)
    return env, lib2 + (f" ({core} kernels)" if core else "")


# ---------------------------------------------------------------------------------------------------
# Runs

def run_json(cmd, env, what):
    """Runs cmd, passes its stderr through, returns the JSON object on the last line of its stdout."""
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.stderr.strip():
        for line in r.stderr.strip().splitlines():
            print(f"  [{what}] {line}", file=sys.stderr)
    lines = [l for l in r.stdout.strip().splitlines() if l.strip()]
    if r.returncode != 0 or not lines:
        die(f"{what} failed (exit {r.returncode}): {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        die(f"{what} did not end with a JSON line: {lines[-1]!r}")


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec=".2f"):
    return "-" if x is None else format(x, spec)


def rel_diff(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-30)


def load_note(loads, threads):
    """Prints the 1-minute load averages seen between runs; warns when the machine was busy beyond the runs
    themselves. Returns the highest."""
    top = max(loads)
    print(f"  1-minute load average between runs: {min(loads):.2f} to {top:.2f} ({os.cpu_count()} CPUs)")
    if top > threads + 1:
        print(f"  WARNING: other processes shared the CPUs: the figures are noisy, and whichever side runs more "
              f"small OpenMP parallel regions per step loses most (a region waits for all {threads} threads)")
    return round(top, 2)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("mode", choices=["train", "infer", "loss"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--siglite", help="siglite-bench (default: build it, or bring it up to date, in build-bench/)")
    p.add_argument("--python", help="the python whose torch to measure (default Debian's /usr/bin/python3)")
    p.add_argument("--torch", choices=["debian", "pypi"], default="debian",
                   help="debian: --python's torch (Debian's python3-torch by default); pypi: PyPI's newest torch, "
                        "in a venv under ~/.cache/siglite-bench/torch-pypi made on first use")
    p.add_argument("--venv", help="where to create the venv with transformers when --python lacks it "
                                  "(default /tmp/hfenv for Debian's python3)")
    p.add_argument("--model", choices=["hf", "plain"], default="hf",
                   help="PyTorch model: transformers' SiglipModel (hf) or bench/torch_siglip.py's plain copy of "
                        "it (plain: no transformers needed)")
    p.add_argument("--blas", choices=["auto", "openblas", "system"], default="auto",
                   help="auto/openblas: replace a reference BLAS under PyTorch with OpenBLAS; system: keep it")
    p.add_argument("--preset", help="model preset (train: bench-tiny, infer: b16)")
    p.add_argument("--batch", type=int, help="batch (train: 256, infer: 8)")
    p.add_argument("--steps", type=int, help="measured steps per run (train 3, infer 5, loss 2)")
    p.add_argument("--warmup", type=int, help="unmeasured steps first (train 1, infer 1; loss has none)")
    p.add_argument("--n", default="4096,16384", help="loss: batch sizes, comma-separated")
    p.add_argument("--d", type=int, default=768, help="loss: embedding size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-init", metavar="DIR", help="write the initial weights and batch to DIR and keep them")
    a = p.parse_args()
    if a.rounds < 1 or a.threads < 1:
        p.error("--rounds and --threads must be >= 1")
    if a.torch == "pypi" and a.python:
        p.error("--torch pypi measures its own venv's python: leave out --python")
    a.python = a.python or "/usr/bin/python3"
    preset = a.preset or {"train": "bench-tiny", "infer": "b16", "loss": None}[a.mode]
    batch = a.batch or {"train": 256, "infer": 8, "loss": None}[a.mode]
    steps = a.steps or {"train": 3, "infer": 5, "loss": 2}[a.mode]
    warmup = a.warmup if a.warmup is not None else {"train": 1, "infer": 1, "loss": 0}[a.mode]

    siglite = a.siglite
    if siglite is None:
        # build-bench is kept up to date: building an up-to-date target is a no-op.
        build = os.path.join(ROOT, "build-bench")
        print("compare.py: building siglite-bench in build-bench/", file=sys.stderr)
        for cmd in (["cmake", "-S", ROOT, "-B", build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                     "-DSIGLITE_BUILD_TESTS=OFF", "-DSIGLITE_BUILD_SAMPLES=OFF", "-DSIGLITE_BUILD_BENCH=ON"],
                    ["cmake", "--build", build, "--target", "siglite-bench"]):
            if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0:
                die("building siglite-bench failed: " + " ".join(cmd) + " (run .ci/install-deps first, or pass "
                    "--siglite)")
        siglite = os.path.join(build, "bench", "siglite-bench")
    if not os.access(siglite, os.X_OK):
        die(f"{siglite} is not an executable")

    if a.torch == "pypi":
        python = pypi_torch_python()
    else:
        ensure_torch(a.python)
        python = ensure_transformers(a.python, a.venv) if a.model == "hf" and a.mode != "loss" else a.python
    tenv, blas = torch_env(python, a.blas, a.threads)
    senv = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    common = ["--threads", str(a.threads), "--seed", str(a.seed)]

    init_dir = None
    cleanup = None
    if a.mode in ("train", "infer"):
        init_dir = a.keep_init or tempfile.mkdtemp(prefix="siglite-compare-")
        cleanup = None if a.keep_init else init_dir
        note(f"writing siglite's initial weights and batch to {init_dir}")
        run_json([siglite, a.mode, "--preset", preset, "--batch", str(batch), "--steps", "1", "--warmup", "0",
                  "--save-init", init_dir] + common, senv, "siglite --save-init")
    try:
        if a.mode == "loss":
            ok = compare_loss(a, siglite, python, senv, tenv, blas, common, steps)
        else:
            ok = compare_model(a, siglite, python, senv, tenv, blas, common, preset, batch, steps, warmup, init_dir)
    finally:
        if cleanup:
            shutil.rmtree(cleanup, ignore_errors=True)
    sys.exit(0 if ok else 1)


def gemm_figures(rounds, med, batch, rate, unit):
    """Prints and returns where the two sides stand against their own GEMM libraries: both do the same GEMM
    FLOPs (siglite-bench counts them), so each side's model GFLOP/s is that count over its median time; beside
    it, each side's 1024^3 GEMM rate in the same runs, siglite's rate if every GEMM FLOP of the step ran at
    its sgemm's 1024^3 rate and nothing else took time, and its rate if the step took only its products' time."""
    flop = rounds[0]["siglite"]["gemm_gflop_per_step"]
    s_model, t_model = flop / med("siglite", "seconds"), flop / med("pytorch", "seconds")
    s_gemm, t_gemm = med("siglite", "sgemm_gflops"), med("pytorch", "gemm_gflops")
    at_sgemm = batch * s_gemm / flop
    t_rate = med("pytorch", rate)
    print(f"  {'model GFLOP/s':<14}{s_model:>12.1f}{t_model:>12.1f}{s_model / t_model:>18.3f}"
          f"   ({flop:.1f} GFLOP of GEMMs a step)")
    print(f"  {'1024^3 GEMM':<14}{s_gemm:>12.1f}{t_gemm:>12.1f}{s_gemm / t_gemm:>18.3f}"
          f"   (GFLOP/s: siglite oneDNN sgemm, PyTorch torch.mm)")
    print(f"  siglite at its 1024^3 sgemm rate for every GEMM FLOP and nothing else: {at_sgemm:.2f} {unit}, "
          f"{at_sgemm / t_rate:.3f}x PyTorch")
    alone, over = med("siglite", "products_per_s"), med("siglite", "seconds_over_products")
    print(f"  siglite's products alone (its linear and attention ops, nothing between them): {alone:.2f} {unit}, "
          f"{alone / t_rate:.3f}x PyTorch; its {'step' if unit == 'pairs/s' else 'pass'} took {over:.3f} of their time")
    return {"gflop_per_step": flop, "siglite_model_gflops": s_model, "pytorch_model_gflops": t_model,
            "siglite_sgemm_gflops": s_gemm, "pytorch_gemm_gflops": t_gemm, "siglite_rate_at_sgemm_rate": at_sgemm,
            "ratio_at_sgemm_rate": at_sgemm / t_rate, "siglite_products_rate": alone,
            "ratio_products_alone": alone / t_rate, "seconds_over_products": over}


def compare_model(a, siglite, python, senv, tenv, blas, common, preset, batch, steps, warmup, init_dir):
    train = a.mode == "train"
    rate = "pairs_per_s" if train else "images_per_s"
    unit = "pairs/s" if train else "images/s"
    scmd = [siglite, a.mode, "--preset", preset, "--batch", str(batch), "--steps", str(steps),
            "--warmup", str(warmup)] + common
    tcmd = [python, TORCH_SCRIPT, a.mode, "--init", init_dir, "--preset", preset, "--model", a.model,
            "--steps", str(steps), "--warmup", str(warmup)] + common
    rounds, loads = [], [os.getloadavg()[0]]
    check = "first_loss" if train else "first_embedding"
    tol = 1e-3
    ok = True
    for r in range(a.rounds):
        order = ["siglite", "pytorch"] if r % 2 == 0 else ["pytorch", "siglite"]
        res = {}
        for side in order:
            res[side] = run_json(scmd, senv, "siglite") if side == "siglite" else run_json(tcmd, tenv, "pytorch")
        rounds.append(res)
        loads.append(os.getloadavg()[0])
        loads.append(os.getloadavg()[0])
        print(f"round {r + 1}/{a.rounds} ({order[0]} first): {a.mode} {preset}, batch {batch}, threads {a.threads}, "
              f"{steps} measured steps after {warmup}; load average {loads[-1]:.2f}")
        print(f"  {'side':<9}{unit:>12}{'median s':>10}{'step seconds':>28}{check:>22}{'peak RSS MiB':>14}")
        for side in ("siglite", "pytorch"):
            j = res[side]
            steps_s = " ".join(f"{x:.2f}" for x in j["step_seconds"])
            print(f"  {side:<9}{j[rate]:>12.2f}{j['seconds']:>10.3f}{steps_s:>28}{j[check]:>22.9g}{j['peak_rss_mib']:>14.1f}")
        s, t = res["siglite"][check], res["pytorch"][check]
        d = rel_diff(s, t) if train else abs(s - t)
        if train:
            later = [rel_diff(x, y) for x, y in zip(res["siglite"]["losses"], res["pytorch"]["losses"])]
            print(f"  first loss relative difference {d:.2e} (limit {tol:g}); over all {len(later)} losses at most "
                  f"{max(later):.2e}")
        else:
            print(f"  first embedding element: absolute difference {d:.2e} (limit 1e-4)")
        sys.stdout.flush()
        if (train and not d < tol) or (not train and not d < 1e-4):
            ok = False
            print(f"compare.py: FAILED: the two sides do not compute the same thing: siglite {check} {s!r}, "
                  f"PyTorch {t!r} (difference {d:.3e}); stopping", file=sys.stderr)
            break

    def med(side, key):
        return median([r[side].get(key) for r in rounds])

    sr, tr = med("siglite", rate), med("pytorch", rate)
    srss, trss = med("siglite", "peak_rss_mib"), med("pytorch", "peak_rss_mib")
    tj = rounds[-1]["pytorch"]
    print(f"\nmedians over {len(rounds)} round(s), {a.threads} threads each side")
    print(f"  {'':<14}{'siglite':>12}{'pytorch':>12}{'siglite/pytorch':>18}")
    print(f"  {unit:<14}{sr:>12.2f}{tr:>12.2f}{sr / tr:>18.3f}")
    print(f"  {'peak RSS MiB':<14}{srss:>12.1f}{trss:>12.1f}{srss / trss:>18.3f}")
    print(f"  pytorch: torch {tj['torch_version']}, {tj['model']}; BLAS {blas}")
    if "rss_after_load_mib" in tj:
        print(f"  pytorch resident set after loading the model: {tj['rss_after_load_mib']:.1f} MiB")
    gemm = gemm_figures(rounds, med, batch, rate, unit)
    busy = load_note(loads, a.threads)
    s0, t0 = rounds[0]["siglite"][check], rounds[0]["pytorch"][check]
    summary = {"bench": "compare", "mode": a.mode, "preset": preset, "batch": batch, "threads": a.threads,
               "rounds": len(rounds), "steps": steps, "warmup": warmup,
               "siglite": {rate: sr, "peak_rss_mib": srss},
               "pytorch": {rate: tr, "peak_rss_mib": trss, "torch": tj["torch_version"], "model": tj["model"],
                           "blas": blas},
               "ratio": sr / tr, "rss_ratio": srss / trss, "gemm": gemm, "max_load_average": busy}
    if train:
        summary.update({"first_loss": {"siglite": s0, "pytorch": t0}, "first_loss_rel_diff": rel_diff(s0, t0),
                        "first_loss_agree": ok})
    else:
        summary.update({"first_embedding": {"siglite": s0, "pytorch": t0}, "first_embedding_abs_diff": abs(s0 - t0),
                        "embeddings_agree": ok})
    print(json.dumps(summary))
    return ok


def compare_loss(a, siglite, python, senv, tenv, blas, common, steps):
    sizes = [int(x) for x in a.n.split(",") if x.strip()]
    results = {n: [] for n in sizes}
    loads = [os.getloadavg()[0]]
    for r in range(a.rounds):
        order = ["siglite", "pytorch"] if r % 2 == 0 else ["pytorch", "siglite"]
        print(f"round {r + 1}/{a.rounds} ({order[0]} first): sigmoid loss forward + backward, d {a.d}, "
              f"threads {a.threads}, {steps} steps")
        print(f"  {'n':>6} {'side':<9}{'median s':>10}{'loss_over_gemm':>16}{'peak beyond inputs MiB':>24}"
              f"{'peak RSS MiB':>14}")
        for n in sizes:
            res = {}
            for side in order:
                if side == "siglite":
                    res[side] = run_json([siglite, "loss", "--n", str(n), "--d", str(a.d), "--steps", str(steps)]
                                         + common, senv, "siglite")
                else:
                    res[side] = run_json([python, TORCH_SCRIPT, "loss", "--n", str(n), "--d", str(a.d), "--steps",
                                          str(steps)] + common, tenv, "pytorch")
            results[n].append(res)
            loads.append(os.getloadavg()[0])
            for side in ("siglite", "pytorch"):
                j = res[side]
                if j.get("skipped"):
                    print(f"  {n:>6} {side:<9}  not runnable: {j['reason']}")
                    continue
                print(f"  {n:>6} {side:<9}{j['seconds']:>10.3f}{fmt(j.get('loss_over_gemm'), '.3f'):>16}"
                      f"{j['peak_beyond_inputs_mib']:>24.1f}{j['peak_rss_mib']:>14.1f}")
            sys.stdout.flush()

    print(f"\nmedians over {a.rounds} round(s), {a.threads} threads each side (siglite: tiled loss; pytorch: plain "
          "n x n loss; time ratio < 1: siglite faster)")
    print(f"  {'n':>6}{'siglite s':>11}{'pytorch s':>11}{'ratio':>8}{'loss/gemm':>11}{'siglite MiB':>13}"
          f"{'pytorch MiB':>13}{'RSS siglite':>13}{'RSS pytorch':>13}")
    rows = []
    for n in sizes:
        rs = results[n]

        def med(side, key):
            return median([r[side].get(key) for r in rs if not r[side].get("skipped")])

        skipped = rs[0]["pytorch"].get("skipped")
        row = {"n": n, "d": a.d, "siglite_seconds": med("siglite", "seconds"),
               "siglite_loss_over_gemm": med("siglite", "loss_over_gemm"),
               "siglite_peak_beyond_inputs_mib": med("siglite", "peak_beyond_inputs_mib"),
               "siglite_peak_rss_mib": med("siglite", "peak_rss_mib")}
        if skipped:
            row.update({"pytorch": "not runnable", "pytorch_reason": rs[0]["pytorch"]["reason"]})
        else:
            row.update({"pytorch_seconds": med("pytorch", "seconds"),
                        "pytorch_peak_beyond_inputs_mib": med("pytorch", "peak_beyond_inputs_mib"),
                        "pytorch_peak_rss_mib": med("pytorch", "peak_rss_mib")})
            row["time_ratio"] = row["siglite_seconds"] / row["pytorch_seconds"]
        rows.append(row)
        print(f"  {n:>6}{fmt(row['siglite_seconds'], '.3f'):>11}{fmt(row.get('pytorch_seconds'), '.3f'):>11}"
              f"{fmt(row.get('time_ratio'), '.3f'):>8}{fmt(row['siglite_loss_over_gemm'], '.3f'):>11}"
              f"{fmt(row['siglite_peak_beyond_inputs_mib'], '.1f'):>13}"
              f"{fmt(row.get('pytorch_peak_beyond_inputs_mib'), '.1f'):>13}"
              f"{fmt(row['siglite_peak_rss_mib'], '.1f'):>13}{fmt(row.get('pytorch_peak_rss_mib'), '.1f'):>13}")
        if skipped:
            print(f"  {'':>6}pytorch not runnable at n = {n}: {row['pytorch_reason']}")
    print("  peak beyond inputs: siglite counts its allocator's bytes, PyTorch its resident-set growth (VmHWM)")
    busy = load_note(loads, a.threads)
    tj = next((r["pytorch"] for n in sizes for r in results[n] if "torch_version" in r["pytorch"]), {})
    print(json.dumps({"bench": "compare", "mode": "loss", "threads": a.threads, "rounds": a.rounds, "steps": steps,
                      "pytorch": {"torch": tj.get("torch_version"), "blas": blas}, "sizes": rows,
                      "max_load_average": busy}))
    return True


if __name__ == "__main__":
    main()
