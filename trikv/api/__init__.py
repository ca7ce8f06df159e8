"""The dependency-free bottom layer: record and wire shapes, the one CBOR codec, typed errors.

Every module that registers shapes with the codec is imported here, so decoding never depends on which
module a caller happened to import first (any `import trikv.api.x` runs this file first).
"""

from trikv.api import codec, internal, protocol, raftpb, records, rpc

__all__ = ["codec", "internal", "protocol", "raftpb", "records", "rpc"]
