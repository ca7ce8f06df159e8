"""The dependency-free bottom layer: record and wire shapes, the one CBOR codec, typed errors."""
