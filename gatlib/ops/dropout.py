"""Dropout masks from random bytes instead of a Bernoulli draw per element: the attention ops'
keep masks (drawn here, in the caller's edge order, whatever the backend) and the layers'
feature dropout. Made for the CPU, where the draw is what costs; exact on any device.

``torch.bernoulli_`` (what ``F.dropout`` calls) costs about 10 ns an element on the CPU, and
``torch.rand(...) >= p`` about 2.5 ns (measured on this project's 2-core Xeon: 2.3 ms and 0.64 ms
for a ``[3800, 64]`` mask, one thread). A keep mask needs far fewer random bits: one byte an
element decides all but 1 element in 256.

The rule, exact to ``2**-41``: write ``p * 2**40`` (rounded to the nearest integer) as
``a * 2**32 + b`` with ``a`` in ``[0, 256)``. An element with a uniform byte ``u`` is dropped when
``u < a``, kept when ``u > a``, and on a tie (probability ``1/256``) dropped when a fresh uniform
32-bit ``w < b``; so ``P(drop) = a / 256 + b / 2**40 = p``. For ``p`` a multiple of 1/256
(0.5, 0.25, 0.125, ...) ``b = 0`` and a tie keeps: the byte alone is an exact Bernoulli(1 - p).
Bytes are disjoint bits of uniform 64-bit words (``random_`` over the full int64 range, one
generator call per 8 elements), so elements are independent; the tie words are fresh draws.
Cost of the ``[3800, 64]`` factor: about 0.1 ms for p a multiple of 1/256, 0.2 ms otherwise.

Where the native library is loaded, a CPU mask or factor (uint8, float32, float64) is made in
one parallel pass by ``gatlib/native/dropout.h`` under the same rule, its bytes and tie words
from a counter-based stream (splitmix64, which passes BigCrush) seeded by one draw of the
generator: as reproducible under a seed, a different stream from the torch path's.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["keep_mask", "keep_factor", "dropout"]

_LOW32 = (1 << 32) - 1


def _threshold(p: float) -> Tuple[int, int]:
    """``(a, b)`` with ``a * 2**32 + b = round(p * 2**40)``: drop below byte ``a``, and on the
    tie ``u == a`` below the 32-bit ``b``."""
    t = int(round(p * (1 << 40)))
    return t >> 32, t & _LOW32


def _words(n: int, device, generator) -> Tensor:
    """``n`` uniform 64-bit words (int64)."""
    w = torch.empty(n, dtype=torch.int64, device=device)
    return w.random_(-(1 << 63), None, generator=generator)


def _size(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _bytes(n: int, device, generator) -> Tensor:
    """``8 * ceil(n / 8)`` uniform bytes (uint8), the first ``n`` of which are used."""
    return _words((n + 7) // 8, device, generator).view(torch.uint8)


def _ties(u: Tensor, a: int, n: int) -> Tensor:
    """Positions ``< n`` of the bytes ``u == a`` (about ``n / 256``), found word by word: one
    fast pass to uint8 flags, ``nonzero`` over the 8-byte words, then over the few hit words.
    (A bool-valued comparison and ``nonzero`` over every byte cost 8x as much.)"""
    flags = torch.eq(u, a, out=torch.empty_like(u))                        # [8W] 0 / 1
    hit = flags.view(torch.int64).nonzero().view(-1)                       # [K] words with a tie
    byte = flags.view(-1, 8).index_select(0, hit).nonzero()                # [T, 2] (word, byte)
    pos = hit.index_select(0, byte[:, 0]) * 8 + byte[:, 1]                 # [T]
    return pos[pos < n]


def _fill(out: Tensor, u: Tensor, p: float, n: int, one, device, generator) -> Tensor:
    """``out[:n] <- one`` where kept, else 0, for ``n`` elements (``out`` uint8 or floating)."""
    a, b = _threshold(p)
    # Without a tie part (p a multiple of 1/256) a byte u >= a keeps; with one, u > a keeps
    # and the ties are decided below.
    torch.gt(u[:n], a - 1 if b == 0 else a, out=out)
    if b != 0:
        pos = _ties(u, a, n)
        if pos.numel() > 0:
            w = _words(pos.numel(), device, generator) & _LOW32            # [T] uniform 32-bit
            out[pos] = torch.ge(w, b).to(out.dtype)
    if one != 1:
        out.mul_(one)
    return out


def _native_lib():
    """The native library where it is loaded (None: torch's generator and ops)."""
    from .. import native
    return native.library()


_NATIVE_SUFFIX = {torch.uint8: "", torch.float32: "_f32", torch.float64: "_f64"}


def _native_for(t: Tensor):
    """The native library where it can draw for ``t`` (a CPU uint8 / float32 / float64 tensor,
    outside ``torch.compile``), else None."""
    if t.dtype not in _NATIVE_SUFFIX or t.device.type != "cpu" or torch.compiler.is_compiling():
        return None
    return _native_lib()


def _seed(generator) -> int:
    """One draw of ``generator`` (default torch's): the seed of a native stream."""
    return int(torch.randint(0, 2 ** 62, (), generator=generator))


def _run_native(lib, out: Tensor, p: float, seed: int, x: Optional[Tensor] = None) -> Tensor:
    """``out`` (contiguous) filled by ``dropout.h`` from stream ``seed``: keep flags (uint8),
    the factor ``1 / (1 - p)`` or 0, or with ``x`` (contiguous, ``out``'s shape and dtype) ``x``
    times that factor."""
    from ..native import abi
    a, b = _threshold(p)
    suffix, n, threads = _NATIVE_SUFFIX[out.dtype], out.numel(), torch.get_num_threads()
    if not suffix:
        abi.call(lib, "gatlib_keep_bytes", n=n, seed=seed, a=a, b=b, out=out, nthreads=threads)
    elif x is None:
        abi.call(lib, "gatlib_keep_factor", suffix, n=n, seed=seed, a=a, b=b,
                 one=1.0 / (1.0 - p), out=out, nthreads=threads)
    else:
        abi.call(lib, "gatlib_dropout", suffix, n=n, seed=seed, a=a, b=b, one=1.0 / (1.0 - p),
                 x=x.view(-1), out=out.view(-1), nthreads=threads)
    return out


def _native_fill(out: Tensor, p: float, generator) -> bool:
    """``out`` (CPU, uint8 / float32 / float64) filled with the keep flags or dropout's factor
    by the native ``dropout.h`` in one parallel pass: the same rule on the bytes of a
    counter-based stream (splitmix64) seeded by one draw of ``generator``. False (nothing
    done) where the library, the device or the dtype does not allow it."""
    lib = _native_for(out)
    if lib is None:
        return False
    _run_native(lib, out, p, _seed(generator))
    return True


def keep_mask(shape: Sequence[int], p: float, device=None,
              generator: Optional[torch.Generator] = None) -> Tensor:
    """A bool tensor of ``shape``, each element True (keep) with probability ``1 - p``,
    independently, from ``generator`` (default: torch's global one).

    Args:
        shape: the mask's shape.
        p (float): drop probability, in ``[0, 1)``.
        device: where the mask lives (default CPU).
        generator (torch.Generator, optional): the random source.
    """
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"p must lie in [0, 1), got {p}")
    shape = tuple(int(s) for s in shape)
    n = _size(shape)
    if p == 0.0:
        return torch.ones(shape, dtype=torch.bool, device=device)
    out = torch.empty(n, dtype=torch.uint8, device=device)
    # 0 / 1 bytes reinterpreted as bool: comparisons that write bool directly are 8x slower.
    if _native_fill(out, float(p), generator):
        return out.view(torch.bool).view(shape)
    return _fill(out, _bytes(n, device, generator), float(p), n, 1, device,
                 generator).view(torch.bool).view(shape)


def keep_factor(shape: Sequence[int], p: float, dtype=torch.float32, device=None,
                generator: Optional[torch.Generator] = None) -> Tensor:
    """``keep_mask(shape, p) / (1 - p)`` as a ``dtype`` tensor (0 or ``1 / (1 - p)``), built
    in place without the bool mask: dropout's factor.

    Args: as :func:`keep_mask`, plus ``dtype`` (a floating dtype, default float32).
    """
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"p must lie in [0, 1), got {p}")
    shape = tuple(int(s) for s in shape)
    n = _size(shape)
    if p == 0.0:
        return torch.ones(shape, dtype=dtype, device=device)
    out = torch.empty(n, dtype=dtype, device=device)
    if _native_fill(out, float(p), generator):
        return out.view(shape)
    return _fill(out, _bytes(n, device, generator), float(p), n, 1.0 / (1.0 - p), device,
                 generator).view(shape)


def dropout(x: Tensor, p: float, training: bool = True,
            generator: Optional[torch.Generator] = None) -> Tensor:
    """``F.dropout(x, p, training)`` with the mask of :func:`keep_mask` on the CPU: each element
    kept with probability ``1 - p`` and scaled by ``1 / (1 - p)``, or zeroed. Other devices (and
    sparse tensors) use ``F.dropout`` itself.

    Shapes: ``x`` any shape -> the same shape.
    """
    if not training or p == 0.0 or x.numel() == 0:
        return x
    if (x.device.type != "cpu" or x.layout != torch.strided or not x.is_floating_point()
            or not 0.0 < float(p) < 1.0):
        # F.dropout's own path (it also zeroes everything for p = 1 and rejects bad p).
        return torch.nn.functional.dropout(x, p, training)
    if _native_for(x) is not None:
        return _NativeDropout.apply(x, float(p), _seed(generator))
    # One factor tensor (0 or 1 / (1 - p)): the product's backward reuses it as the mask.
    return x * keep_factor(x.shape, p, x.dtype, x.device, generator)


def _apply_native(x: Tensor, p: float, seed: int) -> Tensor:
    """``x`` with the mask of stream ``seed`` applied and scaled, in one native pass."""
    x = x.contiguous()
    return _run_native(_native_lib(), torch.empty_like(x), p, seed, x)


class _NativeDropout(torch.autograd.Function):
    """Dropout by the native ``dropout.h`` in one pass (mask, scale and product together),
    keeping no mask: the backward pass makes the same mask again from the same seed and applies
    it to the gradient (the stream is counter-based), so a dropped-out ``[N, F]`` costs no
    memory until the backward pass. Same mask as :func:`keep_factor` from the same generator
    state."""

    @staticmethod
    def forward(ctx, x: Tensor, p: float, seed: int) -> Tensor:
        ctx.p, ctx.seed = p, seed
        return _apply_native(x, p, seed)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        return _apply_native(grad, ctx.p, ctx.seed), None, None
