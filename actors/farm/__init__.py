"""The farm: a file cut into compressed GOP chunks, transcoded by a pool, stitched back.

PacketSource -> ChunkTranscoder (a pool of replicas) -> ChunkStitcher -> any muxer.
"""

from actors.farm.chunk import COMPRESSED_CHUNKS, ENCODED_CHUNKS, Chunk, EncodedChunk
from actors.farm.chunk_stitcher import ChunkStitcher
from actors.farm.chunk_transcoder import ChunkTranscoder, ChunkTranscoderSettings
from actors.farm.packet_source import PacketSource, PacketSourceSettings

__all__ = [
    "COMPRESSED_CHUNKS", "ENCODED_CHUNKS", "Chunk", "ChunkStitcher", "ChunkTranscoder",
    "ChunkTranscoderSettings", "EncodedChunk", "PacketSource", "PacketSourceSettings",
]
