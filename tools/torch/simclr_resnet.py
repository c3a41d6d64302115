"""SimCLR's ResNets (v1 and v2) as one PyTorch module, for the state dicts
that `simclr ckpt export_torch --layout=simclr` writes.

    import json, safetensors.torch
    from simclr_resnet import SimCLRResNet
    arch = json.load(open("r50_2x_sk1.json"))
    model = SimCLRResNet.from_arch(arch).eval()
    model.load_state_dict(safetensors.torch.load_file("r50_2x_sk1.safetensors"))
    out = model(images)          # NCHW float32 in [0, 1], no mean/std normalisation
    out["final_avg_pool"], out["proj_head_output"], out["logits_sup"]

What it reproduces exactly (TensorFlow's arithmetic, up to float rounding):
* convolutions pad (k-1)//2 on both sides (the original's fixed padding; the
  stride sits on the 3x3 conv of a bottleneck, as in torchvision);
* the stem's max pool pads like TF 'SAME' (only at the end when the size is
  even; torchvision pads both sides, see TFSamePool);
* ResNet-D shortcuts for SK models: 2x2 average pool (stride 1: 'SAME',
  averaging the valid cells only; stride 2: one zero row/column at the end,
  'VALID') then a 1x1 conv;
* selective kernels: one 3x3 conv to 2f channels, split in two, a softmax
  across the two streams from a squeeze of their sum;
* BN eps 1e-5, momentum 0.1 (TF's decay 0.9); the projection head's last BN
  (and the linear head's) has no beta.
Depths 18-200, any integer width, the CIFAR stem (3x3/1, no pool), optional
squeeze-and-excitation, projection and supervised heads.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

LAYOUTS = {18: ([2, 2, 2, 2], False), 34: ([3, 4, 6, 3], False),
           50: ([3, 4, 6, 3], True), 101: ([3, 4, 23, 3], True),
           152: ([3, 8, 36, 3], True), 200: ([3, 24, 36, 3], True)}


def conv(cin, cout, k, stride=1, bias=False):
    """A convolution padded (k-1)//2 on both sides (all kernels are odd)."""
    return nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, bias=bias)


def bn(c, eps):
    return nn.BatchNorm2d(c, eps=eps, momentum=0.1)


def same_pads(n, k, s):
    """TF 'SAME' padding (before, after) of a window k, stride s over n."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


class TFSamePool(nn.Module):
    """Max pool with TF 'SAME' padding: padded cells never win. On an even
    size TF pads (0, 1) where nn.MaxPool2d(3, 2, padding=1) pads (1, 1),
    which shifts every window by one pixel."""

    def __init__(self, k=3, s=2):
        super().__init__()
        self.k, self.s = k, s

    def forward(self, x):
        (t, b), (l, r) = same_pads(x.shape[2], self.k, self.s), same_pads(x.shape[3], self.k, self.s)
        x = F.pad(x, (l, r, t, b), value=float("-inf"))
        return F.max_pool2d(x, self.k, self.s)


class TFAvgPool2(nn.Module):
    """The ResNet-D shortcut pool: 2x2; stride 1 'SAME' (valid cells only),
    stride 2 one zero row/column at the end then 'VALID'."""

    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        padded = F.pad(x, (0, 1, 0, 1))
        if self.stride > 1:
            return F.avg_pool2d(padded, 2, self.stride)
        ones = F.pad(torch.ones_like(x[:1, :1]), (0, 1, 0, 1))
        return F.avg_pool2d(padded, 2, 1) / F.avg_pool2d(ones, 2, 1)


class SqueezeExcite(nn.Module):
    def __init__(self, c, squeezed):
        super().__init__()
        self.reduce = conv(c, squeezed, 1, bias=True)
        self.expand = conv(squeezed, c, 1, bias=True)

    def forward(self, x):
        g = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(F.relu(self.reduce(g))))


class Block(nn.Module):
    """A basic block or a bottleneck (optionally with selective kernels and
    squeeze-and-excitation) with a projection shortcut when `project`."""

    def __init__(self, cin, f, stride, project, bottleneck, sk_ratio, se_ratio, eps):
        super().__init__()
        out = 4 * f if bottleneck else f
        self.bottleneck, self.sk = bottleneck, sk_ratio > 0
        self.downsample = None
        if project:
            if self.sk:
                self.downsample = nn.Sequential(TFAvgPool2(stride), conv(cin, out, 1), bn(out, eps))
            else:
                self.downsample = nn.Sequential(conv(cin, out, 1, stride), bn(out, eps))
        if bottleneck:
            self.conv1, self.bn1 = conv(cin, f, 1), bn(f, eps)
            if self.sk:
                m = max(int(f * sk_ratio), 32)
                self.conv2, self.bn2 = conv(f, 2 * f, 3, stride), bn(2 * f, eps)
                self.sk_reduce, self.sk_bn = conv(f, m, 1), bn(m, eps)
                self.sk_expand = conv(m, 2 * f, 1)
            else:
                self.conv2, self.bn2 = conv(f, f, 3, stride), bn(f, eps)
            self.conv3, self.bn3 = conv(f, out, 1), bn(out, eps)
        else:
            self.conv1, self.bn1 = conv(cin, f, 3, stride), bn(f, eps)
            self.conv2, self.bn2 = conv(f, f, 3), bn(f, eps)
        self.se = SqueezeExcite(out, max(int(f * se_ratio), 1)) if se_ratio > 0 else None

    def selective_kernel(self, h):
        h = F.relu(self.bn2(self.conv2(h)))
        s0, s1 = h.chunk(2, dim=1)
        g = (s0 + s1).mean((2, 3), keepdim=True)
        a = self.sk_expand(F.relu(self.sk_bn(self.sk_reduce(g))))
        w = torch.softmax(torch.stack(a.chunk(2, dim=1)), dim=0)
        return s0 * w[0] + s1 * w[1]

    def forward(self, x):
        short = x if self.downsample is None else self.downsample(x)
        h = F.relu(self.bn1(self.conv1(x)))
        if not self.bottleneck:
            h = self.bn2(self.conv2(h))
        else:
            h = self.selective_kernel(h) if self.sk else F.relu(self.bn2(self.conv2(h)))
            h = self.bn3(self.conv3(h))
        if self.se is not None:
            h = self.se(h)
        return F.relu(h + short)


class HeadBN(nn.BatchNorm1d):
    """BatchNorm1d with gamma and, only when `center`, beta."""

    def __init__(self, c, eps, center):
        super().__init__(c, eps=eps, momentum=0.1)
        if not center:
            self.register_parameter("bias", None)


class HeadLayer(nn.Module):
    def __init__(self, cin, cout, eps, center, relu):
        super().__init__()
        self.linear = nn.Linear(cin, cout, bias=False)
        self.bn = HeadBN(cout, eps, center)
        self.relu = relu

    def forward(self, x):
        y = self.bn(self.linear(x))
        return F.relu(y) if self.relu else y


class SimCLRResNet(nn.Module):
    def __init__(self, resnet_depth=50, width_multiplier=1, sk_ratio=0.0, se_ratio=0.0,
                 cifar_stem=False, proj_head_mode="nonlinear", num_proj_layers=3,
                 proj_out_dim=128, num_classes=None, ft_proj_selector=0, bn_epsilon=1e-5):
        super().__init__()
        layout, bottleneck = LAYOUTS[resnet_depth]
        w, eps, sk = width_multiplier, bn_epsilon, sk_ratio > 0
        self.cifar_stem, self.ft_proj_selector = cifar_stem, ft_proj_selector
        if cifar_stem:
            self.conv1, self.bn1 = conv(3, 64 * w, 3), bn(64 * w, eps)
        elif sk:  # ResNet-D deep stem: three 3x3 convs
            self.conv1 = nn.ModuleList([conv(3, 32 * w, 3, 2), conv(32 * w, 32 * w, 3),
                                        conv(32 * w, 64 * w, 3)])
            self.bn1 = nn.ModuleList([bn(32 * w, eps), bn(32 * w, eps), bn(64 * w, eps)])
        else:
            self.conv1, self.bn1 = conv(3, 64 * w, 7, 2), bn(64 * w, eps)
        self.maxpool = None if cifar_stem else TFSamePool(3, 2)
        cin = 64 * w
        for s, blocks in enumerate(layout):
            f = (64 << s) * w
            layer = []
            for i in range(blocks):
                layer.append(Block(cin, f, (1 if s == 0 else 2) if i == 0 else 1, i == 0,
                                   bottleneck, sk_ratio, se_ratio, eps))
                cin = 4 * f if bottleneck else f
            setattr(self, "layer%d" % (s + 1), nn.Sequential(*layer))
        self.feature_dim = cin
        self.head = nn.ModuleList()
        if proj_head_mode == "linear":
            self.head.append(HeadLayer(cin, proj_out_dim, eps, center=False, relu=False))
        elif proj_head_mode == "nonlinear":
            for j in range(num_proj_layers):
                last = j + 1 == num_proj_layers
                self.head.append(HeadLayer(cin, proj_out_dim if last else cin, eps,
                                           center=not last, relu=not last))
        self.fc = None
        if num_classes:
            dims = [cin] + [h.linear.out_features for h in self.head]
            self.fc = nn.Linear(dims[ft_proj_selector], num_classes)

    @classmethod
    def from_arch(cls, arch):
        """Builds the model an export_torch architecture file describes."""
        keys = ["resnet_depth", "width_multiplier", "sk_ratio", "se_ratio", "cifar_stem",
                "proj_head_mode", "num_proj_layers", "proj_out_dim", "num_classes",
                "ft_proj_selector", "bn_epsilon"]
        return cls(**{k: arch[k] for k in keys if k in arch})

    def forward(self, x):
        """x: NCHW images in [0, 1]. Returns the named outputs of `simclr
        features` (block groups, final_avg_pool, proj_head_output, logits_sup)."""
        if isinstance(self.conv1, nn.ModuleList):
            for c, b in zip(self.conv1, self.bn1):
                x = F.relu(b(c(x)))
        else:
            x = F.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        out = {"initial_max_pool": x}
        for s in range(1, 5):
            x = getattr(self, "layer%d" % s)(x)
            out["block_group%d" % s] = x
        h = x.mean((2, 3))
        out["final_avg_pool"] = h
        proj = [h]
        for layer in self.head:
            proj.append(layer(proj[-1]))
        out["proj_head_output"] = proj[-1]
        if self.fc is not None:
            out["logits_sup"] = self.fc(proj[self.ft_proj_selector])
        return out
