"""Compile every shipped kernel config for sm_90 (H200) on the CPU and check its resources.

The Triton interpreter does not type-check kernels (e.g. a loop re-typing an outer variable
compiles nowhere but runs in the interpreter), nor does it see the tile configs used on the
GPU. This test runs the launchers in a subprocess with the interpreter off, at the published
SAM 2 shapes (1024 px, every Hiera variant, memory attention at a full bank) with the
launchers' real strides, intercepts the launches, and compiles each distinct kernel
specialisation with ``triton.compile(..., GPUTarget("cuda", 90, 32))`` and the ptxas shipped in
the triton wheel (``TRITON_DUMP_PTXAS_LOG=1`` gives its register and spill report). It fails on
compile errors, on any register spill, on shared memory over the Hopper limit (227 KB per
block), on a 16-bit flash-attention kernel whose PTX has no ``wgmma.mma_async`` (Hopper's
warpgroup tensor-core MMA) or any ``mma.sync`` (the Ampere-style fallback), and on a
tensor-descriptor config whose PTX has no ``cp.async.bulk.tensor`` (the TMA copy).

Every shipped config is compiled: each flash-attention tile config of
``sam2_fast.kernels._flash.SM90_CONFIGS`` (with and without split-K), the rotation pass, the
window kernel at every published Hiera shape, the FPN kernels; bf16 and fp32 everywhere, fp16
for the defaults (the same tiles as bf16). It prints one line per compiled kernel (registers,
spill bytes, shared memory, MMA instructions) -- the numbers NOTES.md quotes. The installed
triton always; also each triton folder listed in ``SAM2_FAST_AOT_TRITONS`` (CI: triton 3.6,
whose ptxas spilled where 3.9's did not). ``AOT_ONLY=<regex>`` compiles only the matching
labels (quick checks by hand). No GPU needed; skipped where the NVIDIA backend is missing.
"""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent(
    r'''
    import contextlib, io, multiprocessing, os, re, sys, tempfile
    import torch, triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    import sam2_fast.kernels  # noqa: F401
    from sam2_fast.kernels.tuning import hiera_attention_shapes
    FL = sys.modules["sam2_fast.kernels._flash"]
    WA = sys.modules["sam2_fast.kernels.windowed_attention"]
    RA = sys.modules["sam2_fast.kernels.rope_attention"]
    FA = sys.modules["sam2_fast.kernels.fpn_upsample_add"]
    LIMIT = 227 * 1024
    TY = {torch.float16: "*fp16", torch.bfloat16: "*bf16", torch.float32: "*fp32"}
    jobs, seen, label_now = [], {}, [""]

    def capture(kernel, grid, *args, **kwargs):
        kw = dict(kwargs)
        opts = {k: kw.pop(k) for k in ("num_warps", "num_stages") if k in kw}
        vals = dict(zip(kernel.arg_names, args)); vals.update(kw)
        sig, consts, attrs = {}, {}, {}
        for i, p in enumerate(kernel.params):   # mirror the JIT's specialisation
            v = vals[p.name]
            if p.is_constexpr or (type(v) is int and v == 1):
                sig[p.name] = "constexpr"; consts[p.name] = v
                continue
            if isinstance(v, torch.Tensor):
                sig[p.name] = TY[v.dtype]
            elif type(v).__name__ == "TensorDescriptor":  # host-side descriptor (tma configs)
                blk = ",".join(str(b) for b in v.block_shape)
                sig[p.name] = f"tensordesc<{TY[v.base.dtype][1:]}[{blk}]>"
                continue
            elif type(v) is int:
                sig[p.name] = "i32"
            else:
                sig[p.name] = "fp32"
            if isinstance(v, torch.Tensor) or (type(v) is int and v % 16 == 0):
                attrs[(i,)] = [["tt.divisibility", 16]]
        key = (kernel.__name__, tuple(sorted(sig.items())), tuple(sorted(consts.items())),
               tuple(sorted(attrs)), tuple(sorted(opts.items())))
        if key in seen:
            return
        seen[key] = len(jobs)
        tiles = "/".join(f"{k}={consts[k]}" for k in ("BLOCK_M", "BLOCK_N", "BLOCK_C", "BLOCK_P",
                                                     "BLOCK_K") if k in consts)
        jobs.append((label_now[0], kernel, sig, consts, attrs, opts,
                     f"{tiles} w{opts.get('num_warps')} s{opts.get('num_stages', '-')}"))

    for m in (FL, WA, RA, FA):
        m.launch = capture

    only = re.compile(os.environ.get("AOT_ONLY", ""))  # a regex on the labels, for quick checks

    def run(label, fn):
        if only.search(label):
            label_now[0] = label
            fn()

    # ---- memory attention: every shipped 16-bit tile config, with and without split-K -------
    for dt in (torch.bfloat16, torch.float16):
        q = torch.empty(1, 4096, 1, 256, dtype=dt).transpose(1, 2)
        k = torch.empty(1, 7 * 4096 + 64, 1, 256, dtype=dt).transpose(1, 2)
        cos = torch.empty(4096, 128)
        cfgs = FL.shipped_configs(dt, 256)
        for cfg in (cfgs if dt == torch.bfloat16 else cfgs[:1]):
            for splits in (1, 4):
                run(f"rope {dt} {cfg.name} splits={splits}",
                    lambda: RA._rope_attention_triton(q, k, k, cos, cos, 64, splits, False, cfg))
    for dt in (torch.bfloat16, torch.float16, torch.float32):
        q = torch.empty(1, 4096, 1, 256, dtype=dt).transpose(1, 2)
        k = torch.empty(1, 7 * 4096 + 64, 1, 256, dtype=dt).transpose(1, 2)
        cos = torch.empty(4096, 128)
        run(f"rope rotate q+k {dt}", lambda: RA._rotate_qk(q, k, cos, cos, 64, False))
        run(f"rope rotate q {dt}", lambda: RA._rotate_qk(q, k, cos, cos, 64, True))

    # ---- Hiera: every published block shape (1024 px, the four variants) ----------------------
    shapes = {}
    for var in ("tiny", "small", "base_plus", "large"):
        for sh in hiera_attention_shapes(var, 1024):
            shapes[(sh["grid"], sh["heads"], sh["channels"] // sh["heads"], sh["window"],
                    sh["q_stride"])] = var
    for dt in (torch.bfloat16, torch.float16, torch.float32):
        for (H, nh, D, ws, s), var in shapes.items():
            if dt == torch.float16 and var not in ("tiny",):
                continue
            qkv = torch.empty(1, H, H, 3 * nh * D, dtype=dt)
            bias = torch.empty(3 * nh * D)
            run(f"hiera {var} {dt} g{H} h{nh} d{D} w{ws} s{s}",
                lambda: WA._windowed_attention_triton(qkv, bias, nh, ws, s))
            if ws == 0 and s == 1 and dt == torch.bfloat16:  # the global blocks: every config
                for cfg in FL.shipped_configs(dt, D):
                    run(f"hiera {var} global {dt} d{D} {cfg.name}",
                        lambda: WA._windowed_attention_triton(qkv, bias, nh, 0, 1, cfg))
                q, kk, v = WA._global_views(qkv, nh)
                run(f"hiera {var} global {dt} d{D} split", lambda: FL.flash_attention_triton(
                    q, kk, v, num_splits=4))

    # ---- FPN ---------------------------------------------------------------------------------
    for dt in (torch.bfloat16, torch.float16, torch.float32):
        co = torch.empty(1, 256, 32, 32, dtype=dt)
        run(f"fpn add {dt}", lambda: FA._fpn_upsample_add_triton(
            torch.empty(1, 256, 64, 64, dtype=dt), co, None))
        run(f"fpn lateral {dt}", lambda: FA._fpn_lateral_upsample_add_triton(
            torch.empty(1, 384, 64, 64, dtype=dt), torch.empty(256, 384, 1, 1, dtype=dt),
            torch.empty(256), co, None))

    def compile_job(i):
        label, kernel, sig, consts, attrs, opts, tiles = jobs[i]
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                k = triton.compile(ASTSource(kernel, sig, consts, attrs),
                                   target=GPUTarget("cuda", 90, 32), options=opts)
        except Exception as e:  # noqa: BLE001 - reported as a failure below
            return i, None, f"{type(e).__name__}: {str(e)[:300]}"
        log = buf.getvalue()
        regs = re.search(r"Used (\d+) registers", log)
        spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
        ptx = k.asm["ptx"]
        return i, dict(shared=k.metadata.shared, regs=int(regs.group(1)) if regs else -1,
                       spill=(int(spill.group(1)) + int(spill.group(2))) if spill else -1,
                       wgmma=ptx.count("wgmma.mma_async"), mma=ptx.count("mma.sync"),
                       tma=ptx.count("cp.async.bulk.tensor")), None

    procs = max(1, min(int(os.environ.get("AOT_PROCS", "2")), os.cpu_count() or 1))
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        results = sorted(pool.imap_unordered(compile_job, range(len(jobs))))
    bad = []
    sig_of = [job[2] for job in jobs]
    print(f"triton {triton.__version__}\n{len(jobs)} distinct kernel specialisations", flush=True)
    for i, res, err in results:
        label, kernel, *_, tiles = jobs[i]
        name = kernel.__name__
        if err is not None:
            bad.append(f"{label} {name}: {err}")
            print(f"FAIL {label:48s} {name:34s} {tiles:36s} {err}")
            continue
        ok = res["spill"] == 0 and res["regs"] > 0 and res["shared"] <= LIMIT
        # the flash loop's 16-bit dots must be Hopper's asynchronous warpgroup MMAs: a fallback
        # to the Ampere-style mma.sync would cap it far below the tensor cores' rate
        sixteen = any(v in ("*bf16", "*fp16") for v in sig_of[i].values())
        desc = any(v.startswith("tensordesc") for v in sig_of[i].values())
        sixteen = sixteen or desc
        if name == "_flash_attn_fwd" and sixteen and not (res["wgmma"] > 0 and res["mma"] == 0):
            ok = False
        if desc and res["tma"] == 0:  # a descriptor config must copy its tiles with TMA
            ok = False
        print(f"{'OK  ' if ok else 'FAIL'} {label:48s} {name:34s} {tiles:36s} "
              f"regs={res['regs']:3d} spill={res['spill']:4d}B smem={res['shared'] // 1024:3d}KB "
              f"wgmma={res['wgmma']} mma.sync={res['mma']} tma={res['tma']}")
        if not ok:
            bad.append(f"{label} {name} {tiles}: {res}")
    if bad:
        print("FAILED:\n" + "\n".join(bad))
        sys.exit(1)
    print("ALL OK")
    '''
)


def _has_nvidia_backend() -> bool:
    try:
        import triton  # noqa: F401
        from triton.backends import backends
    except Exception:
        return False
    return "nvidia" in backends


def _other_tritons():
    """Extra triton installs to compile with: ``SAM2_FAST_AOT_TRITONS``, folders (``os.pathsep``
    between them) made by ``pip install --no-deps --target DIR triton==X``. CI adds triton 3.6,
    the oldest supported release, whose ptxas allocates registers differently from the newest."""
    dirs = [d for d in os.environ.get("SAM2_FAST_AOT_TRITONS", "").split(os.pathsep) if d]
    for d in dirs:
        if not os.path.isdir(os.path.join(d, "triton")):
            raise ValueError(f"SAM2_FAST_AOT_TRITONS: {d!r} holds no triton package")
    return dirs


def _dist_version(folder: str) -> str:
    for name in os.listdir(folder):
        if name.startswith("triton-") and name.endswith(".dist-info"):
            return name[len("triton-"):-len(".dist-info")]
    raise ValueError(f"no triton-*.dist-info in {folder!r}")


@pytest.mark.slow
@pytest.mark.skipif(not _has_nvidia_backend(), reason="triton without its NVIDIA backend")
@pytest.mark.skipif(torch.cuda.is_available(), reason="on CUDA the kernel tests compile for real")
@pytest.mark.parametrize("triton_dir", [None, *_other_tritons()],
                         ids=lambda d: os.path.basename(d) if d else "installed")
def test_kernels_compile_for_sm90(tmp_path, triton_dir):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = [root, os.environ.get("PYTHONPATH", "")]
    if triton_dir is not None:
        path.insert(0, triton_dir)  # that triton first; torch and numpy stay the installed ones
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in path if p),
               TRITON_INTERPRET="0", TRITON_DEFAULT_FP_FUSION="1", TRITON_DUMP_PTXAS_LOG="1",
               TRITON_CACHE_DIR=str(tmp_path / "triton_cache"))  # cold: ptxas runs and reports
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         env=env, cwd=root, timeout=1500)
    print(res.stdout[-20000:])
    assert res.returncode == 0 and "ALL OK" in res.stdout, (
        res.stdout[-6000:] + "\n" + res.stderr[-4000:]
    )
    if triton_dir is not None:  # it compiled with that triton, not the installed one
        assert f"triton {_dist_version(triton_dir)}\n" in res.stdout, res.stdout[:300]
