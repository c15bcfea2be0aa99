# %% [markdown]
# # Chapter 3 — Convolutional networks
#
# A fully connected layer gives every output its own weight for every input pixel. For images that
# is wasteful: a vessel looks the same in the top-left corner of a fundus photograph as in the
# bottom-right, so the same small detector should be used everywhere. A **convolution** slides one
# small set of weights (a *filter*, or *kernel*) over the image and computes the same weighted sum
# at every position. This chapter builds it up step by step:
#
# 1. a convolution computed **by hand** with NumPy loops, and by handprop's **reference engine**;
# 2. **stride**, and the size of the output;
# 3. several input and output **channels**;
# 4. what happens at the **borders** ("valid" and "same");
# 5. **filters and feature maps**: what the detectors respond to;
# 6. **pooling**;
# 7. **receptive fields**, and how **dilated** convolutions make them grow fast.
#
# > **Quick mode.** `QUICK` (next cell) makes the training runs shorter so that the automated tests
# > run this notebook in seconds. It is `False` unless the environment sets `HANDPROP_QUICK=1`.

# %% tags=["setup"]
import os

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

import handprop as hp

QUICK = os.environ.get("HANDPROP_QUICK", "0") == "1"  # shorter training for the automated tests
hp.lesson.lecture_style()  # fonts >= 12 and 100 dpi: figures that can be projected
results = hp.lesson.Results("03_convolutional_networks")  # the numbers this chapter states (see hp.lesson)
print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## 1. A convolution by hand
#
# Take a single-channel image $x$ of $H \times W$ pixels and a kernel $w$ of $R \times S$ weights.
# The output at position $(i, j)$ is the kernel laid over the image with its top-left corner at
# $(i, j)$, multiplied pixel by pixel and summed:
#
# $$y[i, j] = \sum_{r=0}^{R-1} \sum_{s=0}^{S-1} w[r, s]\; x[i + r,\, j + s].$$
#
# The kernel must fit inside the image ("valid" positions), so the output has
# $(H - R + 1) \times (W - S + 1)$ pixels. Below, a 6×6 image with a vertical edge (dark on the left,
# bright on the right) and a 3×3 kernel that subtracts the left column from the right one: it
# answers where the brightness increases from left to right.

# %%
image = np.zeros((6, 6))
image[:, 3:] = 1.0  # a vertical edge between columns 2 and 3
kernel = np.array([[-1.0, 0.0, 1.0],
                   [-1.0, 0.0, 1.0],
                   [-1.0, 0.0, 1.0]])


def conv2d_single(x, w):
    """Valid convolution of one H x W image with one R x S kernel, written as loops."""
    H, W = x.shape
    R, S = w.shape
    y = np.zeros((H - R + 1, W - S + 1))
    for i in range(H - R + 1):
        for j in range(W - S + 1):
            y[i, j] = np.sum(w * x[i:i + R, j:j + S])
    return y


y = conv2d_single(image, kernel)
print(y)

# %% tags=["figure"]
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, array, title in zip(axes, [image, kernel, y], ["image x (6×6)", "kernel w (3×3)", "output y (4×4)"]):
    ax.imshow(array, cmap="gray")
    for (r, c), value in np.ndenumerate(array):
        ax.text(c, r, f"{value:g}", ha="center", va="center", color="tab:red", fontsize=12)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()

# %% [markdown]
# The same computation with handprop's `Conv2D` layer. Layers work on batches of multi-channel
# images, `(N, C, H, W)`, and store their weights as `(K, C, R, S)`: K filters, each with one
# R×S kernel per input channel. Here N = C = K = 1. Inside `with hp.engine("reference")` the layer
# runs the **reference engine**: plain loops in `handprop/kernels/reference.py`, the definition that
# the fast engines (NumPy's im2col, Numba, CuPy) are tested against. Stepping into it in a debugger
# shows the sum above.

# %%
layer = hp.layers.Conv2D(1, 3, use_bias=False)
layer.build((1, 6, 6), dtype=np.float64)
layer.params["W"] = kernel.reshape(1, 1, 3, 3)  # (K, C, R, S)

with hp.engine("reference"):
    y_library = layer.forward(image.reshape(1, 1, 6, 6))  # (N, C, H, W) -> (N, K, Ho, Wo)

print(y_library.shape)
print("same as the loops:", np.allclose(y_library[0, 0], y))

# %% [markdown]
# *A note on names.* In mathematics a convolution flips the kernel,
# $\sum w[r, s]\, x[i - r, j - s]$; what every deep-learning library computes (the formula above) is
# strictly a **cross-correlation**. Since the kernel is learned, the difference does not matter:
# the network simply learns the flipped kernel.
#
# ## 2. Stride and the output size
#
# With a **stride** $s$ the kernel jumps $s$ pixels at a time, $y[i, j] = \sum_{r,s'} w[r, s']\,
# x[i s + r,\ j s + s']$, and the output shrinks by about $s$ in each direction. With zero
# **padding** $p$ around the image and **dilation** $d$ (section 7) the general rule is
#
# $$H_\text{out} = \left\lfloor \frac{H + 2p - d\,(R - 1) - 1}{s} \right\rfloor + 1 .$$

# %%
def conv2d_single_strided(x, w, stride):
    H, W = x.shape
    R, S = w.shape
    Ho, Wo = (H - R) // stride + 1, (W - S) // stride + 1
    y = np.zeros((Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            y[i, j] = np.sum(w * x[i * stride:i * stride + R, j * stride:j * stride + S])
    return y


x7 = np.arange(49, dtype=float).reshape(7, 7)
y2 = conv2d_single_strided(x7, kernel, stride=2)

layer = hp.layers.Conv2D(1, 3, stride=2, use_bias=False)
layer.build((1, 7, 7), dtype=np.float64)
layer.params["W"] = kernel.reshape(1, 1, 3, 3)
with hp.engine("reference"):
    y2_library = layer.forward(x7.reshape(1, 1, 7, 7))
print("7×7 image, 3×3 kernel, stride 2 ->", y2.shape, "; same as Conv2D:", np.allclose(y2, y2_library[0, 0]))

# %% [markdown]
# ## 3. Channels
#
# A colour image has $C = 3$ channels, and a layer has $K$ filters. Each filter has one kernel per
# input channel and sums over all of them; each filter gives one output channel (a **feature
# map**), plus its own bias $b[k]$:
#
# $$y[n, k, i, j] = b[k] + \sum_{c=0}^{C-1} \sum_{r=0}^{R-1} \sum_{s=0}^{S-1} W[k, c, r, s]\;
#   x[n, c,\, i\,\text{stride} + r,\, j\,\text{stride} + s].$$
#
# The layer has $K C R S + K$ weights, however large the image. The loops, for a whole batch:

# %%
def conv2d_loops(x, W, b, stride=1):
    """x (N, C, H, W), W (K, C, R, S), b (K,) -> y (N, K, Ho, Wo); valid padding."""
    N, C, H, Wd = x.shape
    K, _, R, S = W.shape
    Ho, Wo = (H - R) // stride + 1, (Wd - S) // stride + 1
    y = np.zeros((N, K, Ho, Wo))
    for n in range(N):
        for k in range(K):
            for i in range(Ho):
                for j in range(Wo):
                    window = x[n, :, i * stride:i * stride + R, j * stride:j * stride + S]  # (C, R, S)
                    y[n, k, i, j] = b[k] + np.sum(W[k] * window)
    return y


rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 9, 9))  # two RGB images of 9×9
layer = hp.layers.Conv2D(4, 3, stride=2)
layer.build((3, 9, 9), rng=0, dtype=np.float64)
W, b = layer.params["W"], layer.params["b"]
print("W:", W.shape, " b:", b.shape, " parameters:", layer.count_params())

y_loops = conv2d_loops(x, W, b, stride=2)
with hp.engine("reference"):
    y_reference = layer.forward(x)
y_fast = layer.forward(x)  # the default engine
print(f"output {y_loops.shape}; loops vs reference engine: max difference {np.abs(y_loops - y_reference).max():.1e}; "
      f"vs the {hp.get_engine()} engine: {np.abs(y_loops - y_fast).max():.1e}")

# %% [markdown]
# ## 4. Borders: "valid" and "same"
#
# Without padding ("valid"), every 3×3 layer removes a one-pixel frame: ten such layers turn a 29×29
# patch into 9×9. Padding the input with zeros keeps the size: `padding="same"` adds
# $\lfloor (R-1)/2 \rfloor$ pixels on each side for an odd kernel at stride 1. "Same" is convenient
# (a U-Net needs it to concatenate maps of equal size), but the border outputs then look partly at
# made-up zeros; "valid" outputs only look at real pixels.

# %%
for padding in ["valid", "same"]:
    model = hp.Sequential([hp.layers.Conv2D(8, 3, padding=padding) for _ in range(10)], seed=0)
    model.build((3, 29, 29))
    sizes = [layer.output_shape[1] for layer in model.layers_list()]
    print(f"{padding:>5}: a 29×29 patch through ten 3×3 layers: {sizes}")

# %% [markdown]
# ## 5. Filters and feature maps
#
# What does a filter respond to? We make a small picture with dark, curved, vessel-like lines on a
# bright background (the real fundus photographs come in chapter 6) and apply four filters designed
# by hand: a vertical and a horizontal edge detector, a "dark line" detector (a bright centre
# subtracted from its surroundings), and a blur. `hp.viz.plot_filters` draws the filters and
# `hp.viz.plot_feature_maps` the output of a layer, one panel per channel.

# %%
def vessel_picture(size=64, seed=1):
    """A grey image with dark curved lines on a bright, vignetted background, values in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    picture = 0.85 - 0.5 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)
    for _ in range(6):
        amplitude, frequency, phase = rng.uniform(0.05, 0.3), rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi)
        centre, width = rng.uniform(0.1, 0.9), rng.uniform(0.015, 0.03)
        distance = np.abs(yy - centre - amplitude * np.sin(2 * np.pi * frequency * xx + phase))
        if rng.random() < 0.5:  # some run top to bottom instead
            distance = np.abs(xx - centre - amplitude * np.sin(2 * np.pi * frequency * yy + phase))
        picture -= 0.35 * np.exp(-((distance / width) ** 2))
    return np.clip(picture + 0.02 * rng.standard_normal(picture.shape), 0, 1).astype(np.float32)


picture = vessel_picture()
filters = np.array([
    [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],           # vertical edges (Sobel)
    [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],           # horizontal edges
    [[1, 1, 1], [1, -8, 1], [1, 1, 1]],             # a dark pixel among bright ones: thin dark lines
    [[1, 2, 1], [2, 4, 2], [1, 2, 1]],              # blur
], dtype=np.float32)[:, None] / np.array([4, 4, 8, 16], dtype=np.float32)[:, None, None, None]

edges = hp.Sequential([hp.layers.Conv2D(4, 3, padding="same", use_bias=False)], seed=0)
edges.build((1, 64, 64))
edges.layers_list()[0].params["W"] = filters  # (K=4, C=1, 3, 3)

fig, ax = plt.subplots(figsize=(5, 5))
ax.imshow(picture, cmap="gray")
ax.set_title("the input picture")
ax.axis("off")
plt.show()
filter_names = ["vertical edges", "horizontal edges", "dark line", "blur"]
hp.viz.plot_filters(edges.layers_list()[0], title="four hand-made 3×3 filters", names=filter_names)

# %% tags=["figure"]
hp.viz.plot_feature_maps(edges, picture[None, None], 0, names=filter_names)

# %% [markdown]
# Each feature map lights up where its pattern occurs: the edge filters on either side of every
# line (with opposite signs), the line detector on the lines themselves. The frame around the edge
# maps is an artefact of `padding="same"` (section 4): the zeros outside the picture make an edge of
# their own. A trained network finds its own filters. Here a small ConvNet learns to read the 8×8
# digits; its first layer's eight 3×3 filters and their feature maps for one digit. As in every
# chapter, the data come in three parts: training images set the weights, validation images are
# watched during training, and the test images are used once, to report the final network.

# %%
(x_fit, y_fit), (x_test, y_test) = hp.data.load_digits(flatten=False)  # (N, 1, 8, 8)
shuffle = np.random.default_rng(0).permutation(len(x_fit))
n_val = len(x_fit) // 5
x_val, y_val = x_fit[shuffle[:n_val]], y_fit[shuffle[:n_val]]
x_train, y_train = x_fit[shuffle[n_val:]], y_fit[shuffle[n_val:]]
convnet = hp.Sequential([
    hp.layers.Conv2D(8, 3), hp.layers.ReLU(),   # 8×8 -> 6×6
    hp.layers.MaxPool2D(2),                     # 6×6 -> 3×3
    hp.layers.Conv2D(16, 3), hp.layers.ReLU(),  # 3×3 -> 1×1
    hp.layers.Flatten(), hp.layers.Dense(10),
], seed=0)
convnet.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.Adam(lr=0.01), metrics=["accuracy"])
history = convnet.fit(x_train, y_train, epochs=3 if QUICK else 15, batch_size=32, validation_data=(x_val, y_val),
                      verbose=0)
convnet.summary();
loss, accuracy = convnet.evaluate(x_test, y_test)  # the test images, once: the network is final
results.say("With {weights:,} weights, the ConvNet reaches a validation accuracy of {val:.3f}; on the {n} test "
            "digits, looked at once, {acc:.3f}.", weights=convnet.count_params(),
            val=history.history["val_accuracy"][-1], n=len(x_test), acc=accuracy)

# %% tags=["figure"]
hp.viz.plot_filters(convnet.layers_list()[0], title="learned first-layer filters")

# %% tags=["figure"]
hp.viz.plot_feature_maps(convnet, x_val[:1], 1)  # after the ReLU (layer 1), for a validation digit

# %% [markdown]
# ## 6. Pooling
#
# **Max pooling** keeps the largest value of each window (usually 2×2 with stride 2), **average
# pooling** its mean. Pooling has no weights. It halves the size of the feature maps, so the next
# layers cost a quarter as much and see twice as far (section 7), and it makes the output a little
# less sensitive to small shifts. In the backward pass a max-pooling window sends its whole
# gradient to the pixel that won; an average window shares it equally among its pixels.

# %%
a = np.array([[1, 3, 2, 0],
              [4, 2, 1, 1],
              [0, 1, 5, 6],
              [2, 2, 7, 8]], dtype=float)
by_hand_max = a.reshape(2, 2, 2, 2).max(axis=(1, 3))   # split into 2×2 blocks: (block row, row, block col, col)
by_hand_mean = a.reshape(2, 2, 2, 2).mean(axis=(1, 3))
with hp.engine("reference"):
    library_max = hp.layers.MaxPool2D(2).forward(a[None, None])[0, 0]
    library_mean = hp.layers.AvgPool2D(2).forward(a[None, None])[0, 0]
print("max pooling:\n", by_hand_max, "\nsame as MaxPool2D:", np.array_equal(by_hand_max, library_max))
print("average pooling:\n", by_hand_mean, "\nsame as AvgPool2D:", np.array_equal(by_hand_mean, library_mean))

# %% [markdown]
# ## 7. Receptive fields and dilated convolutions
#
# The **receptive field** of an output pixel is the set of input pixels that can influence it. For
# a chain of layers it follows from two numbers per layer: the **jump** $j$, the distance in input
# pixels between neighbouring positions of the current feature map, and the field size $r$. From
# $r = 1, j = 1$ at the input, a layer with kernel $k$, dilation $d$ and stride $s$ gives
#
# $$k_\text{eff} = d\,(k - 1) + 1, \qquad r \leftarrow r + (k_\text{eff} - 1)\, j, \qquad j \leftarrow j\, s .$$
#
# Pooling is a kernel like any other. `hp.receptive_field(model)` applies the recursion to a model,
# and `hp.receptive_field_table(model)` prints it.

# %%
patch_net = hp.Sequential([
    hp.layers.Conv2D(16, 3), hp.layers.ReLU(), hp.layers.Conv2D(16, 3), hp.layers.ReLU(), hp.layers.MaxPool2D(2),
    hp.layers.Conv2D(32, 3), hp.layers.ReLU(), hp.layers.Conv2D(32, 3), hp.layers.ReLU(), hp.layers.MaxPool2D(2),
    hp.layers.Conv2D(64, 3),
], seed=0)
print(hp.receptive_field_table(patch_net))

# %% [markdown]
# The receptive field can also be *measured* with backpropagation: send a gradient of 1 from the
# centre output pixel back to the input; the input pixels that receive a non-zero gradient are
# exactly its receptive field. With all weights set to 1, the gradient even counts the paths from
# each input pixel to the output.
#
# A **dilated** convolution spreads its 3×3 taps $d$ pixels apart: the same 9 weights cover a
# $(2d+1) \times (2d+1)$ window. Doubling the dilation at every layer makes the receptive field grow
# *exponentially* with depth, while the number of weights grows only linearly. The tutorial's
# network for vessel segmentation uses eight 3×3 layers with dilations 1, 1, 2, 4, 8, 16, 32, 1,
# then two 1×1 layers.

# %%
def conv_stack(kernels, dilations):
    """A chain of single-channel convolutions with all weights 1 (valid padding)."""
    model = hp.Sequential([hp.layers.Conv2D(1, k, dilation=d, use_bias=False, kernel_init="ones")
                           for k, d in zip(kernels, dilations)], seed=0, input_shape=(1, None, None))
    return model


def measured_field(model, size):
    """dL/dx for L = the centre output pixel: non-zero exactly on the receptive field."""
    x = np.zeros((1, 1, size, size))
    model.build((1, size, size), dtype=np.float64)
    y = model.forward(x)
    dy = np.zeros_like(y)
    dy[0, 0, y.shape[2] // 2, y.shape[3] // 2] = 1.0
    return model.backward(dy)[0, 0]


kernels = [3] * 8 + [1, 1]
dilated = conv_stack(kernels, [1, 1, 2, 4, 8, 16, 32, 1, 1, 1])
plain = conv_stack(kernels, [1] * 10)
print(f"{'layer':>5} {'kernel':>7} {'dilation':>9} {'field (dilated)':>16} {'field (plain)':>14}")
for i, (k, layer, r_dilated, r_plain) in enumerate(zip(kernels, dilated.layers_list(), hp.receptive_field(dilated),
                                                         hp.receptive_field(plain)), start=1):
    print(f"{i:>5} {k:>7} {layer.dilation[0]:>9} {r_dilated:>16} {r_plain:>14}")
print("weights per layer, both networks:", [layer.count_params() for layer in plain.layers_list()])

# %% [markdown]
# The slide says, in its table of the dilated network, that the kernel widths are 3, 3, 3, 3, 3, 3,
# 3, 3, 3, 1 (nine 3×3 kernels, then one 1×1) with dilations 1, 1, 2, 4, 8, 16, 32, 1, 1, 1, and that
# the receptive field ends at 129, 131, 131, 131. Precisely, those two rows do not agree: a ninth 3×3
# kernel adds $(3 - 1) \cdot 1 = 2$ pixels, so nine 3×3 layers give **133**, not 131. A receptive
# field of 131 needs the ninth layer to be 1×1 as well: **eight** 3×3 layers and two 1×1 layers,
# which is the network this notebook builds (`kernels = [3] * 8 + [1, 1]`; the table above is
# `hp.receptive_field` of it). With nine 3×3 layers `hp.receptive_field` gives 3, 5, 9, 17, 33, 65,
# 129, 131, 133, 133.

# %% tags=["figure", "thumbnail"]
fig, axes = plt.subplots(1, 2, figsize=(10, 5.4), layout="constrained")
measured = {}
for ax, model, name in [(axes[0], plain, "eight 3×3 + two 1×1 layers, no dilation"),
                        (axes[1], dilated, "the same, dilations 1, 1, 2, ..., 32, 1")]:
    field = measured_field(model, 141)
    measured[model is dilated] = int(np.ptp(np.nonzero(field)[0]) + 1)
    ax.imshow(np.log1p(field), cmap="magma")
    rows, cols = np.nonzero(field)
    ax.set_title(f"{name}\nreceptive field {rows.max() - rows.min() + 1}×{cols.max() - cols.min() + 1}")
    ax.axis("off")
fig.suptitle("which input pixels reach the centre output pixel (log of the number of paths)")
plt.show()

# %%
weights = dilated.count_params()
results.claim("dilation_grows_the_field_at_no_cost", measured[True] >= 5 * measured[False]
              and weights == plain.count_params(),
              "The dilated network sees {dilated}×{dilated} pixels, the plain one {plain}×{plain}, with the same "
              "{weights} weights (eight 3×3 kernels and two 1×1).",
              "The dilated network sees {dilated}×{dilated} pixels, the plain one {plain}×{plain} ({weights} weights "
              "each): not the large gain dilation promises.",
              dilated=measured[True], plain=measured[False], weights=weights)

# %% [markdown]
# The pattern of the dilated field is not uniform: some pixels are reached by many paths,
# some by few (the "gridding" of dilated convolutions).

# %% [markdown]
# ## 8. Deep stacks of small kernels
#
# Stack two 3×3 convolutions and each output pixel depends on a 5×5 window of the input, just like
# one 5×5 convolution. Three 3×3 layers see 7×7, $n$ of them $(2n+1) \times (2n+1)$. With $C$
# channels in and out, one $k \times k$ layer has $C^2 k^2$ weights (plus $C$ biases), so
#
# * two 3×3 layers: $2 \cdot 9\,C^2 = 18\,C^2$ weights against $25\,C^2$ for one 5×5;
# * three 3×3 layers: $27\,C^2$ against $49\,C^2$ for one 7×7;
#
# and each extra layer adds a non-linearity, so the stack can combine the features of the layer
# below into new ones (edges into corners and line endings, those into shapes): the **feature
# hierarchy** of a deep network. That is why modern networks are built almost entirely from 3×3
# kernels. `count_params` and `hp.receptive_field` check the arithmetic for $C = 16$:

# %%
C = 16
stack_rows = []
for n in range(1, 6):
    one_big = hp.Sequential([hp.layers.Conv2D(C, 2 * n + 1)], seed=0, input_shape=(C, 32, 32))
    small_stack = hp.Sequential([layer for _ in range(n) for layer in (hp.layers.Conv2D(C, 3), hp.layers.ReLU())],
                                seed=0, input_shape=(C, 32, 32))
    stack_rows.append((n, hp.receptive_field(one_big)[-1], one_big.count_params(),
                       hp.receptive_field(small_stack)[-1], small_stack.count_params()))
    print(f"one {2 * n + 1}×{2 * n + 1} layer: field {stack_rows[-1][1]:>2}, {stack_rows[-1][2]:6,} weights   |   "
          f"{n} × 3×3 layers: field {stack_rows[-1][3]:>2}, {stack_rows[-1][4]:6,} weights")

# %% tags=["figure"]
stack_rows = np.array(stack_rows)
fig, ax = plt.subplots(figsize=(8, 4.5))
ax.plot(stack_rows[:, 1], stack_rows[:, 2], "o-", label="one large kernel")
ax.plot(stack_rows[:, 3], stack_rows[:, 4], "s-", label="a stack of 3×3 layers")
ax.set_xlabel("receptive field (pixels across)")
ax.set_ylabel("weights (16 channels in and out)")
ax.set_xticks(stack_rows[:, 1])
ax.set_title("the same receptive field, fewer weights")
ax.legend()
plt.show()

# %% [markdown]
# Fewer weights is only half the argument; the stack must also learn as well. On the digits: a
# first 3×3 layer with 16 channels, then either one 5×5 layer or two 3×3 layers with a ReLU between
# them (16 channels each), then the same 2×2 max pooling and dense layer, trained the same way.
# A fifth of the training digits are held out as validation: the two set-ups are compared there,
# and the test digits are not used for this comparison at all.

# %%
hp.set_num_threads(1)  # small networks train fastest on one thread (and a shared machine stays responsive)
n_val = len(x_train) // 5
x_fit, y_fit, x_val, y_val = x_train[n_val:], y_train[n_val:], x_train[:n_val], y_train[:n_val]


def digit_net(middle_layers, seed):
    return hp.Sequential([hp.layers.Conv2D(16, 3, padding="same"), hp.layers.ReLU()] + middle_layers
                         + [hp.layers.ReLU(), hp.layers.MaxPool2D(2), hp.layers.Flatten(), hp.layers.Dense(10)],
                         seed=seed, input_shape=(1, 8, 8))


stack_nets = {"one 5×5": lambda: [hp.layers.Conv2D(16, 5, padding="same")],
              "two 3×3": lambda: [hp.layers.Conv2D(16, 3, padding="same"), hp.layers.ReLU(),
                                  hp.layers.Conv2D(16, 3, padding="same")]}
stack_scores = {name: [] for name in stack_nets}
stack_params = {}
for seed in [0] if QUICK else [0, 1, 2]:
    for name, middle_layers in stack_nets.items():
        net = digit_net(middle_layers(), seed)
        net.compile(loss=hp.losses.SoftmaxCrossEntropy(), optimizer=hp.optimizers.Adam(3e-3), metrics=["accuracy"])
        net.fit(x_fit, y_fit, epochs=3 if QUICK else 10, batch_size=32, verbose=0, validation_data=(x_val, y_val))
        stack_scores[name].append(net.evaluate(x_val, y_val)[1])  # compared on validation; the test set waits
        stack_params[name] = net.count_params()
for name, accuracies in stack_scores.items():
    print(f"{name}: {stack_params[name]:,} weights, validation accuracy {np.mean(accuracies):.3f} "
          f"(seeds {np.round(accuracies, 3)})")

# %%
results.say("Two 3×3 layers see the same 5×5 window as one 5×5 layer; between 16 channels they need "
            "{stack_weights_two_3x3:,} weights instead of {stack_weights_one_5x5:,} ({stack_weights_pct:.0f} %).",
            stack_weights_two_3x3=int(stack_rows[1, 4]), stack_weights_one_5x5=int(stack_rows[1, 2]),
            stack_weights_pct=100 * stack_rows[1, 4] / stack_rows[1, 2])
acc5, acc33 = np.mean(stack_scores["one 5×5"]), np.mean(stack_scores["two 3×3"])
results.effect("two_3x3_vs_one_5x5", acc33 - acc5, 0.02,
               "On the digits the two 3×3 layers ({stack_params_two_3x3:,} weights in all) do better than the "
               "single 5×5 layer ({stack_params_one_5x5:,}): validation accuracy {stack_acc_two_3x3:.3f} against "
               "{stack_acc_one_5x5:.3f} ({stack_seeds}).",
               "On the digits the two 3×3 layers ({stack_params_two_3x3:,} weights in all) do worse than the single "
               "5×5 layer ({stack_params_one_5x5:,}): validation accuracy {stack_acc_two_3x3:.3f} against "
               "{stack_acc_one_5x5:.3f} ({stack_seeds}), more than the 2 points that seeds move these nets.",
               "On the digits the two 3×3 layers ({stack_params_two_3x3:,} weights in all) and the single 5×5 layer "
               "({stack_params_one_5x5:,}) end within the 2 points that seeds move these nets: validation accuracy "
               "{stack_acc_two_3x3:.3f} against {stack_acc_one_5x5:.3f} ({stack_seeds}) — no clear difference, "
               "with fewer weights for the stack.",
               stack_acc_two_3x3=acc33, stack_acc_one_5x5=acc5, stack_seeds="one seed" if QUICK else "mean of 3 seeds",
               stack_params_two_3x3=stack_params["two 3×3"], stack_params_one_5x5=stack_params["one 5×5"]);

# %% [markdown]
# ## 9. What pooling saves, and what it costs
#
# Pooling has no weights, but it saves weights in the layers after it: once the feature maps are
# halved, a 3×3 kernel covers about as much of the picture as a 7×7 kernel did before. Take 40
# feature maps from a first 3×3 layer, and a second layer with 4 filters that should look at a
# neighbourhood about 8 pixels across. Without pooling it needs 7×7 kernels; after 2×2 max pooling,
# 3×3 kernels do (convolution weights only, no biases). This is one configuration that gives the
# slide's two counts; the point holds for any.

# %%
first = lambda: hp.layers.Conv2D(40, 3, use_bias=False)
without_pooling = hp.Sequential([first(), hp.layers.ReLU(), hp.layers.Conv2D(4, 7, use_bias=False)],
                                seed=0, input_shape=(1, 32, 32))
with_pooling = hp.Sequential([first(), hp.layers.ReLU(), hp.layers.MaxPool2D(2),
                              hp.layers.Conv2D(4, 3, use_bias=False)], seed=0, input_shape=(1, 32, 32))
for name, model in (("without pooling", without_pooling), ("with 2×2 pooling", with_pooling)):
    print(f"{name:17s}: {model.count_params():5,} convolution weights, receptive field "
          f"{hp.receptive_field(model)[-1]}×{hp.receptive_field(model)[-1]}")
results.say("Without pooling the two layers have {pool_weights_without:,} weights; with 2×2 max pooling between "
            "them, {pool_weights_with:,}: "
            "the slide's two counts, for receptive fields of {pool_field_without} and {pool_field_with} pixels "
            "across: {pool_weights_pct:.0f} % of the "
            "weights for nearly the same view.",
            pool_weights_without=without_pooling.count_params(), pool_weights_with=with_pooling.count_params(),
            pool_field_without=hp.receptive_field(without_pooling)[-1],
            pool_field_with=hp.receptive_field(with_pooling)[-1],
            pool_weights_pct=100 * with_pooling.count_params() / without_pooling.count_params());

# %% [markdown]
# The price: max pooling forgets *where* inside its window the strongest response was. That is
# what makes a network answer "**what** is in this picture?" the same way when the object moves by
# a pixel — and what makes "**where** exactly is the edge of this vessel?" hard, because
# neighbouring pixels can end up with identical pooled features. Below, a short dark bar moves
# across a small picture one pixel at a time; we compare the features of each shifted picture
# with those of the first, with the line detector of section 5, before and after a 4×4 max pooling.

# %%
detector = hp.Sequential([hp.layers.Conv2D(1, 3, padding="same", use_bias=False), hp.layers.ReLU()], seed=0,
                         input_shape=(1, 16, 16))
detector.layers_list()[0].params["W"] = filters[2:3]  # section 5's line detector: a dark pixel among bright ones
pooler = hp.layers.MaxPool2D(4)
shift_features = {"feature map (no pooling)": [], "after 4×4 max pooling": []}
for shift in range(8):
    bar = np.ones((1, 1, 16, 16), dtype=np.float32)
    bar[0, 0, 6:10, 4 + shift] = 0.0  # a dark vertical bar, 4 pixels long, at column 4 + shift
    fmap = detector.predict(bar)
    shift_features["feature map (no pooling)"].append(fmap.ravel())
    shift_features["after 4×4 max pooling"].append(pooler.forward(fmap).ravel())
unchanged = {name: [bool(np.allclose(f[k], f[k - 1])) for k in range(1, 8)] for name, f in shift_features.items()}

# %% tags=["figure"]
fig, ax = plt.subplots(figsize=(8, 4.2))
for name, features in shift_features.items():
    change = [np.abs(f - features[0]).sum() / np.abs(features[0]).sum() for f in features]
    ax.plot(range(8), change, "o-", label=name)
ax.set_xlabel("shift of the bar (pixels)")
ax.set_ylabel("change of the features\n(relative to no shift)")
ax.set_title("max pooling ignores small shifts")
ax.legend()
plt.show()
results.say("Of the 7 one-pixel moves, {shift_unchanged_pooled} leave the pooled features exactly unchanged and "
            "{shift_unchanged_plain} leave "
            "the unpooled feature map unchanged: after pooling the network cannot tell those positions apart. "
            "Good for *what*, bad for *where*; chapter 6's U-Net brings the position back with skip connections.",
            shift_unchanged_pooled=sum(unchanged["after 4×4 max pooling"]),
            shift_unchanged_plain=sum(unchanged["feature map (no pooling)"]));

# %%
results.save()  # the full-mode build keeps these numbers for tests/test_claims.py

# %% [markdown] tags=["exercises"]
# ## Exercises
#
# Write your answer in each cell marked **your answer**, run it, then run the checker cell below
# it. The checkers compare your code with handprop's `Conv2D`, its gradient checker and
# `hp.receptive_field`, and say what differs.
#
# ### Exercise 1 — the output size
#
# Write `output_size(n, k, stride=1, padding=0, dilation=1)`: the number of output pixels along
# one axis of length `n`, for a kernel of size `k` (the formula of section 2). Return an `int`.

# %% tags=["exercise"]
def output_size(n, k, stride=1, padding=0, dilation=1):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def output_size(n, k, stride=1, padding=0, dilation=1):
    extent = dilation * (k - 1) + 1  # the pixels a dilated kernel spans
    return (n + 2 * padding - extent) // stride + 1


# %% tags=["check"]
hp.exercises.check_output_size(output_size)

# %% [markdown]
# ### Exercise 2 — the backward pass of a convolution
#
# Given the gradient of the loss with respect to the output, `dy` $= \partial L / \partial y$ of
# shape `(N, K, Ho, Wo)`, compute the gradients with respect to the input, the weights and the bias
# of `y = conv2d_loops(x, W, b, stride)` (section 3: valid padding, no dilation). Every output
# $y[n, k, i, j]$ was a sum of products $W[k, c, r, s]\, x[n, c, i\,\text{stride} + r, j\,\text{stride} + s]$,
# so the chain rule sends $dy[n, k, i, j]$ back along each product:
#
# $$\frac{\partial L}{\partial W[k, c, r, s]} = \sum_{n, i, j} dy[n, k, i, j]\; x[n, c, i\,\text{stride} + r, j\,\text{stride} + s],$$
#
# and likewise to each pixel of $x$ that the window read (weighted by $W$), and to $b[k]$.
# Return `(dx, dW, db)` with the shapes of `x`, `W` and `b`. The checker compares them with
# central differences of `Conv2D`'s forward pass (the gradient check of chapter 1).

# %% tags=["exercise"]
def conv2d_backward(dy, x, W, stride):
    # your answer: loops like conv2d_loops, accumulating into dx, dW and db
    raise NotImplementedError


# %% tags=["solution"]
def conv2d_backward(dy, x, W, stride):
    N, C, H, Wd = x.shape
    K, _, R, S = W.shape
    _, _, Ho, Wo = dy.shape
    dx, dW = np.zeros_like(x), np.zeros_like(W)
    for n in range(N):
        for k in range(K):
            for i in range(Ho):
                for j in range(Wo):
                    rows = slice(i * stride, i * stride + R)
                    cols = slice(j * stride, j * stride + S)
                    dx[n, :, rows, cols] += W[k] * dy[n, k, i, j]  # each pixel the window read
                    dW[k] += x[n, :, rows, cols] * dy[n, k, i, j]  # summed over images and positions
    db = dy.sum(axis=(0, 2, 3))
    return dx, dW, db


# %% tags=["check"]
hp.exercises.check_conv2d_backward(conv2d_backward)

# %% [markdown]
# ### Exercise 3 — receptive fields
#
# Write `receptive_field(layers)` for a chain of layers given as `(kernel, stride, dilation)`
# tuples (a 2×2 pooling is `(2, 2, 1)`), returning the receptive field after each layer, as a list
# (the recursion of section 7). The checker tries the tutorial's dilated network, a network with
# pooling, and one with strides and dilations.

# %% tags=["exercise"]
def receptive_field(layers):
    # your answer
    raise NotImplementedError


# %% tags=["solution"]
def receptive_field(layers):
    r, j, fields = 1, 1, []
    for kernel, stride, dilation in layers:
        r += dilation * (kernel - 1) * j  # (k_eff - 1) * j
        j *= stride
        fields.append(r)
    return fields


# %% tags=["check"]
hp.exercises.check_receptive_field(receptive_field)
