"""The benchmark suite's models in PyTorch: the twins of bench/suite_models.hpp.

Same layers, same Keras semantics: 'same' padding as Keras pads (for a stride
above 1 the extra row and column go after, so an asymmetric pad layer comes
first when needed), 'valid' no padding, max-pooling of 2 with stride 2, ReLU
after every hidden layer, 10 logits last (the softmax lives in the loss in
training, and is applied in inference, as loom's predict does). Flatten in
PyTorch's (c, h, w) order is a permutation of Keras's (h, w, c): the same
cost. bench/suite.py checks that both sides count the same parameters.
"""
import torch.nn as nn

# Layers: ("conv", filters, kernel, stride, padding), ("pool",), ("flatten",), ("dense", units).
# The last dense layer is the classifier (no ReLU).
MODELS = {
    "seed": {"input": (28, 28, 1), "train_batch": 32,
             "layers": [("conv", 32, 3, 1, "valid"), ("pool",), ("conv", 64, 3, 1, "valid"), ("pool",), ("flatten",),
                        ("dense", 128), ("dense", 10)]},
    "vgg": {"input": (32, 32, 3), "train_batch": 64,
            "layers": [("conv", 32, 3, 1, "same"), ("conv", 32, 3, 1, "same"), ("pool",), ("conv", 64, 3, 1, "same"),
                       ("conv", 64, 3, 1, "same"), ("pool",), ("flatten",), ("dense", 256), ("dense", 10)]},
    "photo": {"input": (96, 96, 3), "train_batch": 32,
              "layers": [("conv", 32, 5, 2, "same"), ("pool",), ("conv", 64, 3, 1, "same"), ("pool",),
                         ("conv", 128, 3, 1, "same"), ("pool",), ("flatten",), ("dense", 128), ("dense", 10)]},
    "wide": {"input": (16, 16, 64), "train_batch": 32,
             "layers": [("conv", 128, 3, 1, "same"), ("conv", 256, 3, 1, "same"), ("conv", 256, 3, 1, "same"),
                        ("pool",), ("flatten",), ("dense", 10)]},
    "odd": {"input": (32, 32, 3), "train_batch": 64,
            "layers": [("conv", 24, 3, 1, "same"), ("conv", 40, 3, 1, "same"), ("pool",), ("conv", 72, 3, 1, "same"),
                       ("pool",), ("flatten",), ("dense", 100), ("dense", 10)]},
    "mlp": {"input": (784,), "train_batch": 64,
            "layers": [("dense", 512), ("dense", 512), ("dense", 10)]},
    # The best recipe's network: recipe_pytorch.SmallResNet, trained with the
    # recipe's SGD (suite_pytorch.py).
    "resnet": {"input": (28, 28, 1), "train_batch": 128, "network": "recipe"},
}


def is_image_model(name):
    return len(MODELS[name]["input"]) == 3


def keras_pads(size, kernel, stride, padding):
    """(before, after) padding of one axis, and the output size, as Keras computes them."""
    if padding == "valid":
        return (0, 0), (size - kernel) // stride + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return (total // 2, total - total // 2), out


def build(name):
    """The nn.Module of model `name`, taking (N, C, H, W) images or (N, features) vectors."""
    spec = MODELS[name]
    if spec.get("network") == "recipe":
        import recipe_pytorch  # the recipe's twin: the same network as models::fashion_mnist_best
        return recipe_pytorch.SmallResNet(recipe_pytorch.WIDTH, recipe_pytorch.DROPOUT)
    layers = []
    if len(spec["input"]) == 3:
        h, w, c = spec["input"]
    else:
        h, w, c = 1, 1, spec["input"][0]
    dense = [i for i, l in enumerate(spec["layers"]) if l[0] == "dense"]
    features = c
    for i, layer in enumerate(spec["layers"]):
        kind = layer[0]
        if kind == "conv":
            _, filters, k, s, padding = layer
            (top, bottom), oh = keras_pads(h, k, s, padding)
            (left, right), ow = keras_pads(w, k, s, padding)
            if top == bottom and left == right:
                layers.append(nn.Conv2d(c, filters, k, stride=s, padding=(top, left)))
            else:
                layers += [nn.ZeroPad2d((left, right, top, bottom)), nn.Conv2d(c, filters, k, stride=s)]
            layers.append(nn.ReLU(inplace=True))
            h, w, c = oh, ow, filters
        elif kind == "pool":
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        elif kind == "flatten":
            layers.append(nn.Flatten())
            features = h * w * c
        elif kind == "dense":
            layers.append(nn.Linear(features, layer[1]))
            features = layer[1]
            if i != dense[-1]:
                layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)
