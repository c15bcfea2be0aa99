"""Optimizers: gradient descent and its adaptive relatives, with the equations of ``torch.optim``.

An optimizer walks parameters downhill. Every class here has one method that matters::

    opt.step(params, grads)     # params, grads: dict name -> array, same keys; updates params in place

Because ``params`` is a plain dict of named arrays, the same object trains a network
(``{"0.Dense/W": W, "0.Dense/b": b, ...}``) and walks a point across a 2-D surface
(``{"xy": p}``, see :mod:`handprop.viz.trajectories`).

Notation used in every docstring, for one parameter array ``p`` at step ``t = 1, 2, ...``::

    g            the gradient dL/dp handed to ``step`` (never modified: the optimizer copies)
    lr           opt.lr, a float that a schedule may change between steps
    x², √x, x/y  elementwise

Regularization is folded into the gradient first, for every optimizer (this is torch's
``weight_decay``: an L2 penalty ``wd/2·‖p‖²`` added to the loss; and an L1 penalty ``l1·‖p‖₁``,
which torch does not have)::

    g <- g + weight_decay * p + l1 * sign(p)

State (momentum buffers, running averages) lives in ``opt.state[name]``, a dict of arrays with
the shape and dtype of the parameter, plus ``"step"``, the number of updates that parameter has
had (an int). ``opt.reset()`` forgets it all, as a freshly built optimizer would.

Arrays may be NumPy or CuPy (``xp = get_array_module(p)``). A float32 parameter stays float32:
hyper-parameters are Python floats, which do not promote arrays, and a gradient of another
dtype is cast to the parameter's dtype.
"""

from __future__ import annotations

import math

from .backend import get_array_module
from .kernels import fast_kernel

__all__ = ["Optimizer", "SGD", "RMSprop", "AdaGrad", "Adagrad", "AdaDelta", "Adadelta", "Adam", "get"]


def _resolve_lr(cls_name, lr, learning_rate, default):
    """Accept Keras's ``learning_rate=`` as an alias of ``lr=`` (but not both, disagreeing)."""
    if learning_rate is None:
        return lr
    if lr != default and lr != learning_rate:
        raise ValueError(f"{cls_name}: got lr={lr} and learning_rate={learning_rate}; pass only one")
    return learning_rate


def _check_nonnegative(cls_name, **values):
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
            raise TypeError(f"{cls_name}: {key} must be a number, got {value!r}")
        if not value >= 0.0:  # also rejects NaN
            raise ValueError(f"{cls_name}: invalid {key}={value}; it must be >= 0")
        if not math.isfinite(value):
            raise ValueError(f"{cls_name}: invalid {key}={value}; it must be finite")


def _check_below_one(cls_name, key, value, closed=False):
    """``value`` in [0, 1) (or [0, 1] with ``closed``): a decay factor of a running average."""
    if not (value <= 1.0 if closed else value < 1.0):
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{cls_name}: invalid {key}={value}; it must lie in {interval} (it is the weight of "
                         "the old value in a running average; at or above 1 the steps grow without bound)")


class Optimizer:
    """Base class: gradient bookkeeping, regularization and state; subclasses write ``_update``.

    Parameters
    ----------
    lr : float
        Learning rate, kept as the attribute ``opt.lr`` (schedules overwrite it between steps).
    weight_decay : float
        L2 penalty: ``g <- g + weight_decay * p`` (torch's coupled weight decay, not AdamW's).
    l1 : float
        L1 penalty: ``g <- g + l1 * sign(p)`` (its subgradient, 0 at p = 0).

    A subclass provides

    * ``_init_state(p, xp) -> dict``: the zero state of one parameter (without ``"step"``);
    * ``_update(p, g, state, lr, xp)``: the in-place update of ``p`` from the regularized
      gradient ``g``, at step ``state["step"]`` (already incremented, so 1 on the first call).
    """

    def __init__(self, lr, weight_decay=0.0, l1=0.0):
        name = type(self).__name__
        _check_nonnegative(name, lr=lr, weight_decay=weight_decay, l1=l1)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.l1 = float(l1)
        self.state: dict[str, dict] = {}

    # -- the public interface -------------------------------------------------------------------
    def step(self, params, grads):
        """Update every array of ``params`` in place, one optimizer step.

        Parameters
        ----------
        params : dict[str, array]
            Floating-point NumPy or CuPy arrays; each is modified in place.
        grads : dict[str, array]
            The gradient of the loss for each key of ``params``, of the same shape. Extra keys are
            ignored; a missing key is a ``KeyError`` naming it. Nothing is updated when a check
            fails (all keys are checked before the first update).
        """
        for name, p in params.items():
            self._check_pair(name, p, grads)
        lr = float(self.lr)  # a NumPy float64 here would promote float32 parameters
        for name, p in params.items():
            xp = get_array_module(p)
            g = self._regularized_grad(p, grads[name], xp)
            state = self._state_of(name, p, xp)
            state["step"] += 1
            self._update(p, g, state, lr, xp)  # the equations of each class below

    def reset(self):
        """Forget all state (momentum buffers, running averages, step counts)."""
        self.state.clear()

    def get_config(self) -> dict:
        """The hyper-parameters, as keyword arguments that rebuild this optimizer."""
        return {k: v for k, v in vars(self).items() if k != "state"}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    # -- the pieces ----------------------------------------------------------------------------
    def _check_pair(self, name, p, grads):
        if name not in grads:
            raise KeyError(f"{type(self).__name__}.step: no gradient for parameter {name!r} "
                           f"(grads has keys {sorted(grads)})")
        g = grads[name]
        if not hasattr(p, "dtype") or p.dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}.step: parameter {name!r} must be a floating-point "
                            f"array (it is updated in place), got {type(p).__name__}")
        if tuple(getattr(g, "shape", ())) != tuple(p.shape):
            raise ValueError(f"{type(self).__name__}.step: gradient {name!r} has shape "
                             f"{tuple(getattr(g, 'shape', ()))} but the parameter has {tuple(p.shape)}")

    def _regularized_grad(self, p, g, xp):
        """``g + weight_decay * p + l1 * sign(p)`` in p's dtype; a new array whenever it differs from g."""
        if g.dtype != p.dtype:
            g = g.astype(p.dtype)
        if self.weight_decay != 0.0:
            g = g + self.weight_decay * p
        if self.l1 != 0.0:
            g = g + self.l1 * xp.sign(p)
        return g

    def _state_of(self, name, p, xp):
        state = self.state.get(name)
        if state is None:
            state = {"step": 0, **self._init_state(p, xp)}
            self.state[name] = state
        else:
            for key, buf in state.items():
                if key != "step" and buf.shape != p.shape:
                    raise ValueError(f"{type(self).__name__}: state {key!r} of {name!r} has shape "
                                     f"{buf.shape} but the parameter now has {p.shape}; call opt.reset()")
        return state

    def _init_state(self, p, xp) -> dict:
        return {}

    def _update(self, p, g, state, lr, xp):
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum; ``torch.optim.SGD``.

    Update, with momentum ``mu``, dampening ``d`` and velocity buffer ``b`` (``state["momentum_buffer"]``)::

        plain (mu = 0):   p <- p - lr * g
        momentum:         b <- g                      on the first step
                          b <- mu * b + (1 - d) * g   afterwards
                          p <- p - lr * b
        Nesterov:         p <- p - lr * (g + mu * b)  (b updated as above)

    Differences from other sources:

    * Sutskever et al. (2013) and Keras write the velocity with the learning rate inside,
      ``v <- mu * v - lr * g; p <- p + v``. With a constant ``lr`` this is the same walk
      (``v = -lr * b``); when a schedule changes ``lr``, torch's form rescales the whole
      accumulated velocity at once, Keras's only the new gradient.
    * Nesterov's method evaluates the gradient at the look-ahead point ``p + mu * v``. Torch and
      Keras use the equivalent form of Bengio et al. (2012), which needs only the gradient at ``p``.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate (``learning_rate=`` is accepted as an alias, as in Keras).
    momentum : float, default 0.0
    nesterov : bool, default False
        Needs ``momentum > 0`` and ``dampening == 0`` (a ValueError otherwise, as torch).
    weight_decay : float, default 0.0
        L2 penalty, ``g <- g + weight_decay * p``.
    dampening : float, default 0.0
        Keyword only; torch's dampening of the new gradient in the buffer.
    l1 : float, default 0.0
        Keyword only; L1 penalty, ``g <- g + l1 * sign(p)``.

    Examples
    --------
    The tutorial's Keras call works as written:

    >>> opt = SGD(lr=0.01, momentum=0.9, nesterov=True)
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, *, dampening=0.0,
                 l1=0.0, learning_rate=None):
        lr = _resolve_lr("SGD", lr, learning_rate, 0.01)
        _check_nonnegative("SGD", momentum=momentum, dampening=dampening)
        _check_below_one("SGD", "momentum", momentum)
        _check_below_one("SGD", "dampening", dampening, closed=True)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")
        super().__init__(lr, weight_decay, l1)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.dampening = float(dampening)

    def _init_state(self, p, xp):
        return {"momentum_buffer": xp.zeros_like(p)} if self.momentum != 0.0 else {}

    def _update(self, p, g, state, lr, xp):
        if self.momentum != 0.0:
            b = state.get("momentum_buffer")
            if b is None:  # momentum switched on after the first step: like torch, start at g
                b = state["momentum_buffer"] = g.copy()
            elif state["step"] == 1:
                b[...] = g  # torch starts the buffer at g itself (no dampening on step 1)
            else:
                b *= self.momentum
                b += (1.0 - self.dampening) * g
            g = g + self.momentum * b if self.nesterov else b
        fast = fast_kernel("subtract_scaled", p)  # numba: the same line in one pass (kernels/numba_cpu/scaled_add.py)
        if fast is None or not fast(p, g, lr):
            p -= lr * g


class RMSprop(Optimizer):
    """RMSprop (Hinton, lecture 6e, 2012): divide by a running RMS of the gradient; ``torch.optim.RMSprop``.

    Update, with ``v = state["square_avg"]`` (and ``gbar = state["grad_avg"]`` when centered,
    ``b = state["momentum_buffer"]`` with momentum)::

        v    <- alpha * v + (1 - alpha) * g²
        gbar <- alpha * gbar + (1 - alpha) * g          (centered only)
        s    <- √v + eps,   or  √(v - gbar²) + eps  when centered (a running standard deviation)
        mu = 0:   p <- p - lr * g / s
        mu > 0:   b <- mu * b + g / s ;   p <- p - lr * b

    Differences from other sources: Keras calls ``alpha`` ``rho`` and defaults to rho = 0.9,
    lr = 0.001, eps = 1e-7; TensorFlow 1's ``RMSPropOptimizer`` put eps *inside* the square root,
    ``√(v + eps)``. Torch (and handprop) add it outside. Centered RMSprop is from Graves (2013).

    Parameters
    ----------
    lr : float, default 0.01
    alpha : float, default 0.99
        Decay of the running average of g².
    eps : float, default 1e-8
    momentum : float, default 0.0
    weight_decay : float, default 0.0
    centered : bool, default False
        Keyword only.
    l1 : float, default 0.0
        Keyword only.
    """

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0, *, centered=False,
                 l1=0.0, learning_rate=None):
        lr = _resolve_lr("RMSprop", lr, learning_rate, 0.01)
        _check_nonnegative("RMSprop", alpha=alpha, eps=eps, momentum=momentum)
        _check_below_one("RMSprop", "alpha", alpha, closed=True)
        _check_below_one("RMSprop", "momentum", momentum)
        super().__init__(lr, weight_decay, l1)
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.centered = bool(centered)

    def _init_state(self, p, xp):
        state = {"square_avg": xp.zeros_like(p)}
        if self.centered:
            state["grad_avg"] = xp.zeros_like(p)
        if self.momentum > 0.0:
            state["momentum_buffer"] = xp.zeros_like(p)
        return state

    def _update(self, p, g, state, lr, xp):
        v = state["square_avg"]
        v *= self.alpha
        v += (1.0 - self.alpha) * g * g
        if self.centered:
            gbar = state["grad_avg"]
            gbar += (1.0 - self.alpha) * (g - gbar)  # = alpha*gbar + (1-alpha)*g, as torch's lerp
            s = xp.sqrt(v - gbar * gbar) + self.eps
        else:
            s = xp.sqrt(v) + self.eps
        if self.momentum > 0.0:
            b = state["momentum_buffer"]
            b *= self.momentum
            b += g / s
            p -= lr * b
        else:
            p -= lr * (g / s)


class AdaGrad(Optimizer):
    """AdaGrad (Duchi, Hazan & Singer, 2011): divide by the root of all past g²; ``torch.optim.Adagrad``.

    Update, with the accumulator ``G = state["sum"]`` (starting at ``initial_accumulator_value``)::

        G  <- G + g²
        p  <- p - lr_t * g / (√G + eps),      lr_t = lr / (1 + (t - 1) * lr_decay)

    The step size of each coordinate only shrinks, so AdaGrad slows down and eventually stops;
    RMSprop and AdaDelta replace the sum by a running average to fix this.

    Differences from other sources: Keras defaults to ``initial_accumulator_value=0.1``,
    eps = 1e-7, lr = 0.001; torch (and handprop) start the sum at 0 with eps = 1e-10.

    Parameters
    ----------
    lr : float, default 0.01
    eps : float, default 1e-10
    weight_decay : float, default 0.0
    lr_decay, initial_accumulator_value : float, default 0.0
        Keyword only, as torch.
    l1 : float, default 0.0
        Keyword only.
    """

    def __init__(self, lr=0.01, eps=1e-10, weight_decay=0.0, *, lr_decay=0.0, initial_accumulator_value=0.0,
                 l1=0.0, learning_rate=None):
        lr = _resolve_lr("AdaGrad", lr, learning_rate, 0.01)
        _check_nonnegative("AdaGrad", eps=eps, lr_decay=lr_decay,
                           initial_accumulator_value=initial_accumulator_value)
        super().__init__(lr, weight_decay, l1)
        self.eps = float(eps)
        self.lr_decay = float(lr_decay)
        self.initial_accumulator_value = float(initial_accumulator_value)

    def _init_state(self, p, xp):
        return {"sum": xp.full_like(p, self.initial_accumulator_value)}

    def _update(self, p, g, state, lr, xp):
        G = state["sum"]
        G += g * g
        lr_t = lr / (1.0 + (state["step"] - 1) * self.lr_decay)
        p -= lr_t * (g / (xp.sqrt(G) + self.eps))


class AdaDelta(Optimizer):
    """AdaDelta (Zeiler, 2012): RMSprop whose step carries its own units; ``torch.optim.Adadelta``.

    Update, with running averages ``v = state["square_avg"]`` of g² and ``u = state["acc_delta"]``
    of the squared steps::

        v     <- rho * v + (1 - rho) * g²
        delta <- √(u + eps) / √(v + eps) * g      RMS of past steps / RMS of gradients
        u     <- rho * u + (1 - rho) * delta²
        p     <- p - lr * delta

    Zeiler's paper has no learning rate (lr = 1, torch's default). Because ``u`` starts at 0, the
    first steps have size about √eps: AdaDelta starts slowly and speeds up on its own.

    Differences from other sources: Keras defaults to lr = 0.001 (which makes AdaDelta very slow),
    rho = 0.95, eps = 1e-7. eps is inside both square roots everywhere (paper, torch, Keras).

    Parameters
    ----------
    lr : float, default 1.0
    rho : float, default 0.9
    eps : float, default 1e-6
    weight_decay : float, default 0.0
    l1 : float, default 0.0
        Keyword only.
    """

    def __init__(self, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, *, l1=0.0, learning_rate=None):
        lr = _resolve_lr("AdaDelta", lr, learning_rate, 1.0)
        _check_nonnegative("AdaDelta", rho=rho, eps=eps)
        if rho > 1.0:
            raise ValueError(f"AdaDelta: invalid rho={rho}; it must be in [0, 1]")
        super().__init__(lr, weight_decay, l1)
        self.rho = float(rho)
        self.eps = float(eps)

    def _init_state(self, p, xp):
        return {"square_avg": xp.zeros_like(p), "acc_delta": xp.zeros_like(p)}

    def _update(self, p, g, state, lr, xp):
        v, u = state["square_avg"], state["acc_delta"]
        v *= self.rho
        v += (1.0 - self.rho) * g * g
        delta = xp.sqrt(u + self.eps) / xp.sqrt(v + self.eps) * g
        u *= self.rho
        u += (1.0 - self.rho) * delta * delta
        p -= lr * delta


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): momentum plus RMSprop, with bias correction; ``torch.optim.Adam``.

    Update, with the first and second moment estimates ``m = state["exp_avg"]``,
    ``v = state["exp_avg_sq"]``::

        m  <- beta1 * m + (1 - beta1) * g            running mean of g       (the momentum part)
        v  <- beta2 * v + (1 - beta2) * g²           running mean of g²      (the RMSprop part)
        m̂  = m / (1 - beta1^t),   v̂ = v / (1 - beta2^t)     undo the bias of starting at 0
        p  <- p - lr * m̂ / (√v̂ + eps)

    With ``amsgrad=True`` (Reddi et al., 2018) ``v̂`` uses the running maximum
    ``state["max_exp_avg_sq"] <- max(max_exp_avg_sq, v)`` instead of ``v``, so steps cannot grow.

    Differences from other sources: the paper's Algorithm 1 is the formula above. Its section 2
    (and Keras, TensorFlow) use the cheaper "epsilon hat" form
    ``p <- p - lr * √(1 - beta2^t) / (1 - beta1^t) * m / (√v + ε̂)``, which equals the above
    with ``eps = ε̂ / √(1 - beta2^t)``: identical for eps = 0, slightly different otherwise
    (Keras's default ε̂ is 1e-7). ``weight_decay`` here is L2 added to g, as torch's Adam; AdamW's
    decoupled decay (``p <- p - lr * wd * p``) is a different method.

    Parameters
    ----------
    lr : float, default 0.001
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0.0
    amsgrad : bool, default False
    l1 : float, default 0.0
        Keyword only.
    """

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *, l1=0.0,
                 learning_rate=None):
        lr = _resolve_lr("Adam", lr, learning_rate, 0.001)
        beta1, beta2 = (float(b) for b in betas)
        for i, beta in enumerate((beta1, beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Adam: invalid beta parameter at index {i}: {beta}; it must be in [0, 1)")
        _check_nonnegative("Adam", eps=eps)
        super().__init__(lr, weight_decay, l1)
        self.betas = (beta1, beta2)
        self.eps = float(eps)
        self.amsgrad = bool(amsgrad)

    def _init_state(self, p, xp):
        state = {"exp_avg": xp.zeros_like(p), "exp_avg_sq": xp.zeros_like(p)}
        if self.amsgrad:
            state["max_exp_avg_sq"] = xp.zeros_like(p)
        return state

    def _update(self, p, g, state, lr, xp):
        beta1, beta2 = self.betas
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1.0 - beta1) * (g - m)  # = beta1*m + (1-beta1)*g, written as torch's lerp
        v *= beta2
        v += (1.0 - beta2) * g * g
        if self.amsgrad:
            xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        bias_correction1 = 1.0 - beta1**t
        bias_correction2 = 1.0 - beta2**t
        denom = xp.sqrt(v) / bias_correction2**0.5 + self.eps  # √v̂ + eps
        p -= (lr / bias_correction1) * (m / denom)  # lr * m̂ / (√v̂ + eps)


Adagrad = AdaGrad  # the spelling of Keras and torch.optim
Adadelta = AdaDelta

_BY_NAME = {"sgd": SGD, "rmsprop": RMSprop, "adagrad": AdaGrad, "adadelta": AdaDelta, "adam": Adam}


def get(identifier, **kwargs) -> Optimizer:
    """An optimizer from a name (``"sgd"``, ``"adam"``, ... case-insensitive) or an instance (returned as is).

    ``model.compile(optimizer="adam")`` can use this, as Keras accepts optimizer names.
    """
    if isinstance(identifier, Optimizer):
        return identifier
    key = str(identifier).lower()
    if key not in _BY_NAME:
        raise ValueError(f"unknown optimizer {identifier!r}; choose one of {sorted(_BY_NAME)}")
    return _BY_NAME[key](**kwargs)
