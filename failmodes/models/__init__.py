"""Reference classifiers whose pretrained weights are in common use, to debug with failmodes.

So far: the CIFAR-10 ResNets of He et al. (2016), see
[`failmodes.models.cifar_resnet`][failmodes.models.cifar_resnet]. The weights themselves are not
shipped; [`load_cifar_resnet`][load_cifar_resnet] reads a checkpoint file.
"""

from failmodes.models.cifar_resnet import (
    CIFAR10_CLASSES,
    CIFAR_MEAN,
    CIFAR_RESNET_DEPTHS,
    CIFAR_STD,
    BasicBlock,
    CifarResNet,
    cifar_resnet,
    cifar_transform,
    load_cifar_resnet,
)

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR_MEAN",
    "CIFAR_RESNET_DEPTHS",
    "CIFAR_STD",
    "BasicBlock",
    "CifarResNet",
    "cifar_resnet",
    "cifar_transform",
    "load_cifar_resnet",
]
