"""Reference (numpy) arithmetic of PyTorch 1.13.1's quantized CPU ops with
torch.backends.quantized.engine = "qnnpack" on x86-64, as splitinfer must
reproduce it.  See models/quantization.md for the prose and the verification
results; `python3 models/quant_arith.py` re-runs the verification.

Conventions: activations are quint8 (uint8 values in [0, 255]) with a
per-tensor float32 scale and an integer zero point; weights are qint8 with
per-tensor float32 scale and zero point 0 (the qnnpack default qconfig);
bias is float32.  Every float operation below is done in IEEE float32 with
round-to-nearest-even, exactly in the order written; integer sums are exact
(int64 here, int32 in PyTorch, which never overflows for these models).
"""
import numpy as np

F32 = np.float32


def f32(x):
    return np.asarray(x, dtype=np.float32)


def rint_f32(x):
    """Round-half-to-even of a float32 value (SSE2 CVTPS2DQ / lrintf)."""
    return np.rint(f32(x)).astype(np.int64)


# ---------------------------------------------------------------- quantize
def quantize(x, scale, zero_point, qmin=0, qmax=255):
    """torch.quantize_per_tensor(x, scale, zp, quint8) (QuantStub).
    q = clamp(zp + nearbyint(x * (1.0f / scale)), qmin, qmax), float32."""
    inv = F32(1.0) / F32(scale)
    return np.clip(zero_point + rint_f32(f32(x) * inv), qmin, qmax)


def quantize_bias(bias, x_scale, w_scale):
    """Bias as qnnpack uses it: int32 with scale float32(w_scale * x_scale),
    zero point 0, rounded like quantize() (multiply by the float32 reciprocal),
    clamped to int32."""
    bscale = F32(np.float64(w_scale) * np.float64(x_scale))  # == float32 product
    inv = F32(1.0) / bscale
    return np.clip(rint_f32(f32(bias) * inv), -2**31, 2**31 - 1)


# ------------------------------------------------------------ requantize
def requant_scale(x_scale, w_scale, y_scale):
    """qnnpack's float32 multiplier: (w_scale * x_scale) * (1.0f / y_scale)."""
    return (F32(w_scale) * F32(x_scale)) * (F32(1.0) / F32(y_scale))


def requantize_fp32(acc, scale, zero_point, qmin=0, qmax=255):
    """qnnpack fp32 requantization (SSE2): cvt int32->float32 (RNE),
    multiply by the float32 scale (RNE), convert to int32 (RNE), add the
    output zero point, clamp to [qmin, qmax].  (The SSE2 kernel saturates to
    int16 before adding the zero point and to uint8 after; equal to a plain
    clamp for |acc*scale| < 2**31.)"""
    y = rint_f32(f32(np.asarray(acc, dtype=np.int64).astype(np.float32)) * F32(scale))
    return np.clip(y + zero_point, qmin, qmax)


# ------------------------------------------------------------------ conv
def _im2col(x, kh, kw, stride, padding, dilation, pad_value):
    n, c, h, w = x.shape
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    xp = np.full((n, c, h + 2 * ph, w + 2 * pw), pad_value, dtype=np.int64)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i * dh:i * dh + sh * oh:sh,
                                  j * dw:j * dw + sw * ow:sw]
    return cols, oh, ow


def conv2d_acc(xq, x_zp, wq, w_zp, bias_q, stride=(1, 1), padding=(0, 0),
               dilation=(1, 1), groups=1):
    """int32 accumulator: bias_q[oc] + sum (x - x_zp) * (w - w_zp); padding
    is the input zero point, i.e. contributes 0."""
    oc, icg, kh, kw = wq.shape
    cols, oh, ow = _im2col(np.asarray(xq, np.int64) - x_zp, kh, kw, stride,
                           padding, dilation, 0)
    n = xq.shape[0]
    w = np.asarray(wq, np.int64) - np.asarray(w_zp, np.int64).reshape(-1, 1, 1, 1)
    ocg = oc // groups
    acc = np.empty((n, oc, oh, ow), dtype=np.int64)
    for g in range(groups):
        c = cols[:, g * icg:(g + 1) * icg].reshape(n, icg * kh * kw, oh * ow)
        wg = w[g * ocg:(g + 1) * ocg].reshape(ocg, icg * kh * kw)
        acc[:, g * ocg:(g + 1) * ocg] = np.einsum('ok,nkp->nop', wg, c).reshape(n, ocg, oh, ow)
    return acc + np.asarray(bias_q, np.int64).reshape(1, -1, 1, 1)


def conv2d(xq, x_scale, x_zp, wq, w_scale, w_zp, bias, y_scale, y_zp,
           stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, relu=False):
    """quantized::conv2d / conv2d_relu (nnq.Conv2d, nniq.ConvReLU2d),
    per-tensor or per-channel (w_scale/w_zp arrays of length OC)."""
    oc = wq.shape[0]
    ws = np.broadcast_to(f32(w_scale), (oc,))
    wz = np.broadcast_to(np.asarray(w_zp, np.int64), (oc,))
    bq = quantize_bias(np.zeros(oc, F32) if bias is None else bias, x_scale, ws)
    acc = conv2d_acc(xq, x_zp, wq, wz, bq, stride, padding, dilation, groups)
    rs = requant_scale(x_scale, ws, y_scale).reshape(1, -1, 1, 1)
    return requantize_fp32(acc, rs, y_zp, y_zp if relu else 0, 255)


def linear(xq, x_scale, x_zp, wq, w_scale, w_zp, bias, y_scale, y_zp, relu=False):
    """quantized::linear (nnq.Linear): x [N, K], w [OC, K]."""
    oc = wq.shape[0]
    ws = np.broadcast_to(f32(w_scale), (oc,))
    wz = np.broadcast_to(np.asarray(w_zp, np.int64), (oc,))
    bq = quantize_bias(np.zeros(oc, F32) if bias is None else bias, x_scale, ws)
    acc = (np.asarray(xq, np.int64) - x_zp) @ (np.asarray(wq, np.int64) - wz[:, None]).T + bq
    rs = requant_scale(x_scale, ws, y_scale).reshape(1, -1)
    return requantize_fp32(acc, rs, y_zp, y_zp if relu else 0, 255)


# ------------------------------------------------------------------- add
def add_params(a_scale, a_zp, b_scale, b_zp, y_scale):
    """qnnpack q8vadd parameters (fixed point, computed in float32)."""
    a_os = F32(a_scale) / F32(y_scale)
    b_os = F32(b_scale) / F32(y_scale)
    m = max(a_os, b_os)
    exp = int((np.array(m, F32).view(np.uint32) >> 23)) - 127
    shift = 21 - exp
    mult = np.array((21 - exp + 127) << 23, np.uint32).view(np.float32)
    am = int(np.rint(F32(a_os * mult)))
    bm = int(np.rint(F32(b_os * mult)))
    zpp = -(am * a_zp + bm * b_zp)
    return am, bm, shift, zpp


def add(aq, a_scale, a_zp, bq, b_scale, b_zp, y_scale, y_zp, relu=False):
    """quantized::add / add_relu (QFunctional.add / add_relu) on the qnnpack
    path (both quint8, same shape): fixed-point, rounding half away from 0."""
    am, bm, shift, zpp = add_params(a_scale, a_zp, b_scale, b_zp, y_scale)
    acc = zpp + np.asarray(aq, np.int64) * am + np.asarray(bq, np.int64) * bm
    mask = (1 << shift) - 1
    rem = (acc & mask) - (acc < 0)
    out = (acc >> shift) + (rem > (mask >> 1))
    return np.clip(out + y_zp, y_zp if relu else 0, 255)


def add_float(aq, a_scale, a_zp, bq, b_scale, b_zp, y_scale, y_zp, relu=False):
    """Alternative: the generic (non-qnnpack) quantized add: dequantize in
    float32, add, requantize with the float32 reciprocal of y_scale."""
    da = (np.asarray(aq, np.int64) - a_zp).astype(F32) * F32(a_scale)
    db = (np.asarray(bq, np.int64) - b_zp).astype(F32) * F32(b_scale)
    return quantize(f32(da + db), y_scale, y_zp, y_zp if relu else 0, 255)


def requantize_tensor(q, x_scale, x_zp, y_scale, y_zp):
    """Change of quantization parameters as quantized::cat does for an input
    whose (scale, zp) differ from the output's: dequantize in float32
    ((q - x_zp) * x_scale), then quantize()."""
    d = (np.asarray(q, np.int64) - x_zp).astype(F32) * F32(x_scale)
    return quantize(d, y_scale, y_zp)


def cat(parts, dim, y_scale, y_zp):
    """quantized::cat (QFunctional.cat): parts = [(q, scale, zp), ...]."""
    return np.concatenate([q if (s == y_scale and z == y_zp) else
                           requantize_tensor(q, s, z, y_scale, y_zp)
                           for q, s, z in parts], dim)


# ---------------------------------------------------------------- pooling
def global_avgpool(xq, x_scale, x_zp, y_scale, y_zp):
    """adaptive_avg_pool2d(x, 1) (qnnpack average pooling with the kernel =
    the whole input; y_scale/y_zp are the input's): acc = sum(x - x_zp)
    (int32, N = H*W terms), scale = x_scale / (y_scale * float(N)) in float32
    (multiply first, then divide), y = clamp(rint(float32(acc)*scale)+y_zp)."""
    n, c, h, w = xq.shape
    cnt = h * w
    acc = np.asarray(xq, np.int64).reshape(n, c, cnt).sum(-1) - cnt * x_zp
    scale = F32(x_scale) / (F32(y_scale) * F32(cnt))
    return requantize_fp32(acc, scale, y_zp).reshape(n, c, 1, 1)


def maxpool2d(xq, k, s, p):
    """quantized max_pool2d: max over the window, padding never wins; scale and
    zero point are those of the input."""
    cols, oh, ow = _im2col(np.asarray(xq, np.int64), k, k, (s, s), (p, p), (1, 1), -1)
    return cols.max(axis=(2, 3))


# ------------------------------------------------------- lookup-table ops
def lut_op(fn, x_scale, x_zp, y_scale, y_zp):
    """qnnpack's 256-entry lookup table for an element-wise op (hardswish,
    hardsigmoid): for q in 0..255, all float32:
      x = x_scale * float(q - x_zp);  y = fn(x)
      t = (1.0f / y_scale) * y + float(y_zp)   (multiply, then add; no FMA)
      t = min(max(t, 0.0f), 255.0f);  table[q] = lrintf(t)  (half to even)
    The op is then out[i] = table[in[i]]."""
    q = np.arange(256)
    x = F32(x_scale) * (q - x_zp).astype(F32)
    y = f32(fn(x))
    t = f32(f32((F32(1.0) / F32(y_scale)) * y) + F32(y_zp))
    t = np.minimum(np.maximum(t, F32(0)), F32(255))
    return rint_f32(t)


# ------------------------------------------------ integer-only ('cmsis')
def quantize_multiplier(real):
    """TFLite's QuantizeMultiplier (double arithmetic): real = m * 2**(shift-31)
    with m in [2**30, 2**31) (int32), std::frexp + std::round (half away from
    zero).  Vectorised over an array of multipliers."""
    real = np.asarray(real, np.float64)
    mant, exp = np.frexp(real)
    m = np.trunc(mant * 2.0**31 + np.where(mant >= 0, 0.5, -0.5)).astype(np.int64)
    over = m == (1 << 31)
    m = np.where(over, m // 2, m)
    exp = np.where(over, exp + 1, exp).astype(np.int64)
    return m, exp


def srdhm(a, b):
    """SaturatingRoundingDoublingHighMul(int32 a, int32 b) (gemmlowp)."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    res = np.where(num >= 0, num >> 31, -((-num) >> 31))   # C division: truncate
    return np.where((a == -2**31) & (b == -2**31), 2**31 - 1, res)


def rdbpot(x, exponent):
    """RoundingDivideByPOT(x, exponent) (gemmlowp): round half away from 0."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    rem = x & mask
    thr = (mask >> 1) + (x < 0)
    return (x >> exponent) + (rem > thr)


def requantize_fixed(acc, real_multiplier, zero_point, qmin=0, qmax=255):
    """Integer-only requantization as CMSIS-NN's arm_nn_requantize /
    TFLite Micro's MultiplyByQuantizedMultiplier:
    y = RDBPOT(SRDHM(acc << max(shift,0), m), max(-shift,0)) + zp, clamped.
    real_multiplier may be a scalar or broadcast against acc (per channel)."""
    m, shift = quantize_multiplier(real_multiplier)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    x = np.asarray(acc, np.int64) << left
    y = rdbpot(srdhm(x, m), right)
    return np.clip(y + zero_point, qmin, qmax)


def hardswish_f(x):
    """float32: (x * min(max(x + 3, 0), 6)) / 6, in this order."""
    x = f32(x)
    return f32(x * np.minimum(np.maximum(x + F32(3), F32(0)), F32(6))) / F32(6)


def hardsigmoid_f(x):
    """float32: min(max(x + 3, 0), 6) / 6.  PyTorch fixes the output
    quantization of hardsigmoid to scale 1/256, zero point 0."""
    x = f32(x)
    return np.minimum(np.maximum(x + F32(3), F32(0)), F32(6)) / F32(6)


def mul(aq, a_scale, a_zp, bq, b_scale, b_zp, y_scale, y_zp, relu=False):
    """quantized::mul (QFunctional.mul), generic CPU kernel (no qnnpack path):
    c = (a - a_zp) * (b - b_zp) (int32), multiplier = a_scale * b_scale *
    (1.0f / y_scale) in float32, y = clamp(rint(float32(c) * multiplier) + y_zp)."""
    c = (np.asarray(aq, np.int64) - a_zp) * (np.asarray(bq, np.int64) - b_zp)
    mult = F32(a_scale) * F32(b_scale) * (F32(1.0) / F32(y_scale))
    return requantize_fp32(c, mult, y_zp, y_zp if relu else 0, 255)


def _bitlen(v):
    # number of significant bits of a non-negative int64 < 2**53 (clz in C)
    return np.frexp(v.astype(np.float64))[1].astype(np.int64)


def _rne_shift(v, k):
    """round-half-to-even of v / 2**k for v >= 0, k >= 0 (integers)."""
    k = np.minimum(k, 62)
    q = v >> k
    rem = v & ((np.int64(1) << k) - 1)
    half = np.where(k > 0, np.int64(1) << np.maximum(k - 1, 0), 1 << 62)
    return q + ((rem > half) | ((rem == half) & ((q & 1) == 1)))


def requantize_fp32_intonly(acc, scale, zero_point, qmin=0, qmax=255):
    """Integer-only emulation of requantize_fp32 (bit-exact): the float32
    scale is split into a 24-bit mantissa and exponent once; per element
    the int32 -> float32 conversion, the float32 product and the final
    float -> int conversion are each reproduced as a round-half-to-even
    right shift of integers.  No float arithmetic at run time."""
    acc = np.asarray(acc, np.int64)
    sbits = np.asarray(f32(scale)).view(np.uint32).astype(np.int64)
    ms = (sbits & 0x7FFFFF) | 0x800000           # normal, positive scales only
    es = ((sbits >> 23) & 0xFF) - 127 - 23
    sign = np.where(acc < 0, -1, 1)
    mag = np.abs(acc)
    # int32 -> float32: keep 24 significant bits
    sh = np.maximum(_bitlen(mag) - 24, 0)
    q = _rne_shift(mag, sh)
    sh = np.where(q == (1 << 24), sh + 1, sh)
    q = np.where(q == (1 << 24), 1 << 23, q)
    # float32 product: 24 x 24 bit mantissas, round to 24 bits
    p = q * ms
    sh2 = np.maximum(_bitlen(p) - 24, 0)
    p2 = _rne_shift(p, sh2)
    sh2 = np.where(p2 == (1 << 24), sh2 + 1, sh2)
    p2 = np.where(p2 == (1 << 24), 1 << 23, p2)
    e = sh + es + sh2
    # float32 -> int: round half to even
    r = np.where(e >= 0, p2 << np.clip(e, 0, 30), _rne_shift(p2, np.maximum(-e, 0)))
    return np.clip(sign * r + zero_point, qmin, qmax)


# =====================================================================
# Verification against PyTorch (needs /usr/bin/python3 with torch 1.13.1):
#   /usr/bin/python3 models/quant_arith.py [--trials N] [--models a,b,c]
# Prints, per op, the number of elements where this file's result differs
# from PyTorch's qnnpack result (must be 0), and for 'cmsis' the largest
# difference (must be <= 1).
# =====================================================================
def _verify_ops(trials, seed=1):
    import torch
    import torch.nn as nn
    import torch.nn.functional as Fn
    import torch.nn.quantized as nnq
    import torch.nn.intrinsic.quantized as nniq
    torch.backends.quantized.engine = "qnnpack"
    rng = np.random.default_rng(seed)
    rng6 = np.random.default_rng(seed + 1)
    res = {}

    def note(kind, got, ref):
        s = res.setdefault(kind, [0, 0, 0])
        d = np.abs(np.asarray(got, np.int64) - np.asarray(ref, np.int64))
        s[0] += d.size; s[1] += int((d > 0).sum()); s[2] = max(s[2], int(d.max()) if d.size else 0)

    def sc(lo, hi):
        return float(F32(2.0 ** rng.uniform(lo, hi)))

    def qt(q, s, z):
        return torch._make_per_tensor_quantized_tensor(torch.from_numpy(np.ascontiguousarray(q)), s, z)

    for t in range(trials):
        # quantize (incl. exact ties)
        x = (rng.standard_normal(2000) * 2.0 ** rng.uniform(-5, 5)).astype(F32)
        s, z = sc(-10, 0), int(rng.integers(0, 256))
        x[:200] = ((rng.integers(-300, 300, 200) + 0.5) * F32(s)).astype(F32)
        note("quantize", torch.quantize_per_tensor(torch.from_numpy(x), s, z, torch.quint8).int_repr().numpy(),
             quantize(x, s, z))
        # conv: 3x3 s1/s2, depthwise 3x3/5x5, 1x1, grouped; per-tensor and per-channel
        kind = t % 6
        if kind == 0:
            ic, oc, k, st, g = int(rng.integers(1, 40)), int(rng.integers(1, 40)), 3, 1, 1
        elif kind == 1:
            ic, oc, k, st, g = int(rng.integers(1, 40)), int(rng.integers(1, 40)), 3, 2, 1
        elif kind in (2, 4):
            c = int(rng.integers(1, 100)); ic, oc, k, st, g = c, c, 3 if kind == 2 else 5, int(rng.integers(1, 3)), c
        elif kind == 3:
            ic, oc, k, st, g = int(rng.integers(1, 200)), int(rng.integers(1, 200)), 1, 1, 1
        else:
            g = int(rng.integers(2, 5)); ic = g * int(rng.integers(1, 8)); oc = g * int(rng.integers(1, 8))
            k = int(rng.choice([1, 3, 5, 7])); st = int(rng.integers(1, 3))
        p = k // 2 if rng.random() < 0.8 else 0
        h, w = int(rng.integers(k, 20)), int(rng.integers(k, 20))
        relu = bool(rng.random() < 0.5)
        per_channel = bool(rng.random() < 0.2)
        xs, xz = sc(-8, 0), int(rng.integers(0, 256))
        xq = rng.integers(0, 256, (1, ic, h, w)).astype(np.uint8)
        wq = rng.integers(-128, 128, (oc, ic // g, k, k)).astype(np.int8)
        if per_channel:
            ws = (2.0 ** rng.uniform(-10, -2, oc)).astype(F32)
            wt = torch._make_per_channel_quantized_tensor(torch.from_numpy(wq), torch.from_numpy(ws.astype(np.float64)),
                                                          torch.zeros(oc, dtype=torch.long), 0)
        else:
            ws = np.full(oc, sc(-10, -2), F32)
            wt = qt(wq, float(ws[0]), 0)
        bias = (rng.standard_normal(oc) * rng.choice([0.01, 1, 100])).astype(F32)
        ys = float(F32(xs * ws.mean() * np.sqrt(ic // g * k * k) * 128 * 60 * 2.0 ** rng.uniform(-3, 3) / 255))
        yz = int(rng.integers(0, 256))
        M = (nniq.ConvReLU2d if relu else nnq.Conv2d)(ic, oc, k, stride=st, padding=p, groups=g)
        M.set_weight_bias(wt, torch.from_numpy(bias)); M.scale, M.zero_point = ys, yz
        out = M(qt(xq, xs, xz)).int_repr().numpy()
        note("conv2d", out, conv2d(xq, xs, xz, wq, ws, np.zeros(oc, np.int64), bias, ys, yz, (st, st), (p, p), (1, 1), g, relu))
        acc = conv2d_acc(xq, xz, wq, np.zeros(oc, np.int64), quantize_bias(bias, xs, ws), (st, st), (p, p), (1, 1), g)
        rs = requant_scale(xs, ws, ys).reshape(1, -1, 1, 1)
        note("conv2d intonly", out, requantize_fp32_intonly(acc, rs, yz, yz if relu else 0, 255))
        note("conv2d cmsis", out, requantize_fixed(acc, rs, yz, yz if relu else 0, 255))
        # linear
        kk, oc, n = int(rng.integers(1, 1300)), int(rng.integers(1, 200)), int(rng.integers(1, 4))
        xq = rng.integers(0, 256, (n, kk)).astype(np.uint8)
        ws = sc(-10, -2); wq = rng.integers(-128, 128, (oc, kk)).astype(np.int8)
        bias = (rng.standard_normal(oc) * rng.choice([0.01, 1, 100])).astype(F32)
        ys = float(F32(xs * ws * np.sqrt(kk) * 128 * 60 * 2.0 ** rng.uniform(-3, 3) / 255))
        M = nnq.Linear(kk, oc); M.set_weight_bias(qt(wq, ws, 0), torch.from_numpy(bias)); M.scale, M.zero_point = ys, yz
        out = M(qt(xq, xs, xz)).int_repr().numpy()
        note("linear", out, linear(xq, xs, xz, wq, ws, 0, bias, ys, yz))
        acc = (xq.astype(np.int64) - xz) @ wq.astype(np.int64).T + quantize_bias(bias, xs, np.full(oc, ws, F32))
        note("linear cmsis", out, requantize_fixed(acc, requant_scale(xs, ws, ys), yz))
        # add / add_relu (same shape, quint8: the qnnpack path)
        shape = (1, int(rng.integers(1, 50)), int(rng.integers(1, 20)), int(rng.integers(1, 20)))
        aq = rng.integers(0, 256, shape).astype(np.uint8); bq = rng.integers(0, 256, shape).astype(np.uint8)
        as_, az = sc(-8, 0), int(rng.integers(0, 256))
        bs, bz = float(F32(as_ * 2.0 ** rng.uniform(-3, 3))), int(rng.integers(0, 256))
        ys = float(F32(max(as_, bs) * 2.0 ** rng.uniform(-1, 2)))
        for r in (False, True):
            yz = int(rng.integers(0, 255 if r else 256))   # qnnpack refuses add_relu with zp 255
            f = torch.ops.quantized.add_relu if r else torch.ops.quantized.add
            note("add_relu" if r else "add", f(qt(aq, as_, az), qt(bq, bs, bz), ys, yz).int_repr().numpy(),
                 add(aq, as_, az, bq, bs, bz, ys, yz, r))
        # global average pool (NCHW and channels-last input; many exact .5 ties)
        c, h, w = int(rng.integers(1, 80)), int(rng.integers(1, 15)), int(rng.integers(2, 15))
        q = rng.integers(0, 256, (1, c, h, w)).astype(np.uint8)
        if t % 3 == 0:
            q[:] = rng.integers(100, 102, q.shape)
        x = qt(q, xs, xz)
        if t % 2:
            x = x.contiguous(memory_format=torch.channels_last)
        o = Fn.adaptive_avg_pool2d(x, 1)
        assert o.q_scale() == xs and o.q_zero_point() == xz
        note("adaptive_avg_pool2d", o.int_repr().numpy(), global_avgpool(q, xs, xz, xs, xz))
        n_, c_, h_, w_ = q.shape
        acc = q.astype(np.int64).reshape(n_, c_, -1).sum(-1) - h_ * w_ * xz
        note("adaptive_avg_pool2d cmsis", o.int_repr().numpy().reshape(n_, c_),
             requantize_fixed(acc, F32(xs) / (F32(xs) * F32(h_ * w_)), xz))
        # hardswish, hardsigmoid (lookup tables)
        x = qt(q, xs * 64, xz); hs, hz = sc(-8, 0), int(rng.integers(0, 256))
        note("hardswish", torch.ops.quantized.hardswish(x, hs, hz).int_repr().numpy(),
             lut_op(hardswish_f, float(x.q_scale()), xz, hs, hz)[q])
        o = Fn.hardsigmoid(x)
        assert o.q_scale() == 1 / 256 and o.q_zero_point() == 0
        note("hardsigmoid", o.int_repr().numpy(), lut_op(hardsigmoid_f, float(x.q_scale()), xz, 1 / 256, 0)[q])
        # mul (SE: hardsigmoid output times activation)
        a = rng.integers(0, 256, q.shape).astype(np.uint8)
        ms, mz = sc(-8, 0), int(rng.integers(0, 256))
        ys = float(F32(ms * 2.0 ** rng.uniform(-1, 1)))
        note("mul", torch.ops.quantized.mul(qt(a, 1 / 256, 0), qt(q, ms, mz), ys, yz).int_repr().numpy(),
             mul(a, 1 / 256, 0, q, ms, mz, ys, yz))
        # maxpool 3x3 s2 p1
        note("max_pool2d", Fn.max_pool2d(qt(q, xs, xz), 3, 2, 1).int_repr().numpy(), maxpool2d(q, 3, 2, 1))
        # cat with differing qparams
        parts = [(q, xs, xz), (a, ms, mz)]
        note("cat", torch.ops.quantized.cat([qt(q, xs, xz), qt(a, ms, mz)], 1, ys, yz).int_repr().numpy(),
             cat(parts, 1, ys, yz))
        # relu / relu6 (hardtanh(0, 6), F.relu6, nn.ReLU6, quantized::relu6) on an
        # NCHW-contiguous quint8 tensor: clamp to [zp, 255] / [zp, quantize(6.0)];
        # half of the scales put 6/scale next to a rounding tie (own generator, so
        # that the other ops see the same data as before these checks existed).
        s6 = float(F32(6.0 / (int(rng6.integers(1, 250)) + 0.5 + rng6.uniform(-1e-6, 1e-6)))) if t % 2 else xs
        hi = int(quantize(F32(6.0), s6, xz))
        x6 = qt(q, s6, xz)
        note("relu", Fn.relu(x6).int_repr().numpy(), np.clip(q, xz, 255))
        for kind, op in (("relu6 hardtanh", lambda v: Fn.hardtanh(v, 0.0, 6.0)),
                         ("relu6 hardtanh_ (nn.ReLU6)", lambda v: nn.ReLU6(inplace=True)(v.clone())),
                         ("relu6 quantized::relu6", torch.ops.quantized.relu6)):
            note(kind, op(x6).int_repr().numpy(), np.clip(q, xz, hi))
        # ... but on a channels-last tensor (every qnnpack conv output) these ops
        # return the clamped bytes in NHWC order as an NCHW tensor (PyTorch 1.13.1 bug)
        cl = x6.contiguous(memory_format=torch.channels_last)
        note("relu6 channels-last bug", Fn.hardtanh(cl, 0.0, 6.0).int_repr().numpy().reshape(-1),
             np.clip(q.transpose(0, 2, 3, 1).reshape(-1), xz, hi))
        # mean over H, W (quantized::mean: shufflenet_v2) is the global average pool
        xm = qt(q, xs, xz)
        if t % 2:
            xm = xm.contiguous(memory_format=torch.channels_last)
        o = torch.mean(xm, [2, 3])
        note("mean [2, 3]", o.int_repr().numpy(),
             global_avgpool(q, xs, xz, o.q_scale(), o.q_zero_point()).reshape(o.shape))
        assert o.q_scale() == xs and o.q_zero_point() == xz
    return res


def _verify_model(name, res=96, ninputs=2, seed=0):
    """Layer by layer: every quantized op of the converted torchvision
    quantizable model, recomputed here from PyTorch's own quantized inputs."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as Fn
    import torch.nn.quantized as nnq
    import torch.nn.intrinsic.quantized as nniq
    from torchvision.models import quantization as tq
    torch.backends.quantized.engine = "qnnpack"
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    m = getattr(tq, name)(weights=None, quantize=False).eval()
    for mod in m.modules():           # lively BN statistics
        if isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.5)
            mod.weight.data.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
            mod.bias.data.copy_(torch.randn(c, generator=g) * 0.1)
    m.fuse_model()
    m.qconfig = torch.ao.quantization.get_default_qconfig("qnnpack")
    torch.ao.quantization.prepare(m, inplace=True)
    with torch.no_grad():
        for _ in range(8):
            m(torch.randn(1, 3, res, res, generator=g))
    torch.ao.quantization.convert(m, inplace=True)

    rec = []
    for n_, mod in m.named_modules():
        if isinstance(mod, nnq.QFunctional):
            for meth in ("add", "add_relu", "mul"):
                def wrapped(*args, _o=getattr(mod, meth), _k=meth, _m=mod):
                    out = _o(*args)
                    rec.append((_k, _m, args, out))
                    return out
                setattr(mod, meth, wrapped)
        elif len(list(mod.children())) == 0 or isinstance(mod, nnq.Linear):
            mod.register_forward_hook(lambda mod, i, o: rec.append((type(mod).__name__, mod, i, o)))
    orig = Fn.adaptive_avg_pool2d

    def aap(x, size):
        out = orig(x, size)
        rec.append(("adaptive_avg_pool2d", None, (x,), out))
        return out

    def qi(t):
        return t.int_repr().numpy().astype(np.int64), float(t.q_scale()), int(t.q_zero_point())

    stats = {}
    Fn.adaptive_avg_pool2d = aap
    try:
        for _ in range(ninputs):
            rec.clear()
            with torch.no_grad():
                m(torch.randn(1, 3, res, res, generator=g) * 1.5)
            for kind, mod, inp, out in rec:
                ref = None
                if isinstance(mod, nnq.Quantize):
                    ref = quantize(inp[0].numpy(), float(mod.scale), int(mod.zero_point))
                elif isinstance(mod, (nnq.Conv2d, nniq.ConvReLU2d)):
                    xq, xs, xz = qi(inp[0]); w = mod.weight(); b = mod.bias()
                    ref = conv2d(xq, xs, xz, w.int_repr().numpy(), w.q_scale(), w.q_zero_point(),
                                 None if b is None else b.detach().numpy(), mod.scale, mod.zero_point,
                                 mod.stride, mod.padding, mod.dilation, mod.groups, isinstance(mod, nniq.ConvReLU2d))
                elif isinstance(mod, nnq.Linear):
                    xq, xs, xz = qi(inp[0]); w = mod.weight(); b = mod.bias()
                    ref = linear(xq, xs, xz, w.int_repr().numpy(), w.q_scale(), w.q_zero_point(),
                                 None if b is None else b.detach().numpy(), mod.scale, mod.zero_point)
                elif kind in ("add", "add_relu", "mul"):
                    (aq, as_, az), (bq, bs, bz) = qi(inp[0]), qi(inp[1])
                    f = mul if kind == "mul" else add
                    ref = f(aq, as_, az, bq, bs, bz, mod.scale, mod.zero_point, kind == "add_relu")
                elif kind == "adaptive_avg_pool2d":
                    (xq, xs, xz), (_, ys, yz) = qi(inp[0]), qi(out)
                    ref = global_avgpool(xq, xs, xz, ys, yz)
                elif isinstance(mod, nn.MaxPool2d):
                    ref = maxpool2d(qi(inp[0])[0], mod.kernel_size, mod.stride, mod.padding)
                elif isinstance(mod, nnq.Hardswish):
                    xq, xs, xz = qi(inp[0])
                    ref = lut_op(hardswish_f, xs, xz, mod.scale, mod.zero_point)[xq]
                elif isinstance(mod, nn.Hardsigmoid):
                    (xq, xs, xz), (_, ys, yz) = qi(inp[0]), qi(out)
                    ref = lut_op(hardsigmoid_f, xs, xz, ys, yz)[xq]
                if ref is None:
                    continue
                o = out.int_repr().numpy().astype(np.int64)
                s = stats.setdefault(kind, [0, 0, 0])
                s[0] += 1; s[1] += o.size; s[2] += int((o != ref).sum())
    finally:
        Fn.adaptive_avg_pool2d = orig
    return stats


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--models", default="mobilenet_v2,resnet18,mobilenet_v3_large")
    a = ap.parse_args()
    for kind, (n, bad, mx) in _verify_ops(a.trials).items():
        print(f"{kind:28s} elements {n:9d}  differing {bad:6d}  max |diff| {mx}")
    for name in filter(None, a.models.split(",")):
        for kind, (runs, n, bad) in sorted(_verify_model(name).items()):
            print(f"{name:20s} {kind:20s} layer runs {runs:4d}  elements {n:9d}  mismatches {bad}")
