"""trikv: an etcd-class distributed key-value store on Trio. This package is the public client."""

__version__ = "0.1.0"
