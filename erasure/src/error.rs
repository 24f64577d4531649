/// Everything that can go wrong while coding or verifying shards.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "invalid erasure geometry: {data} data + {parity} parity shards, block {block_size} bytes"
    )]
    InvalidGeometry {
        data: usize,
        parity: usize,
        block_size: usize,
    },
    #[error("block of {len} bytes exceeds the block size {block_size}")]
    BlockTooLarge { len: usize, block_size: usize },
    #[error("got {got} shards, geometry has {want}")]
    ShardCount { got: usize, want: usize },
    #[error("shard {shard} is {got} bytes, expected {want}")]
    ShardLength {
        shard: usize,
        got: usize,
        want: usize,
    },
    #[error("only {have} shards readable, {need} needed")]
    TooFewShards { have: usize, need: usize },
    #[error("bitrot detected in shard {shard}, chunk {chunk}")]
    Bitrot { shard: usize, chunk: u64 },
    #[error("shard {shard} is truncated at chunk {chunk}")]
    Truncated { shard: usize, chunk: u64 },
    #[error("I/O error on shard {shard}: {source}")]
    Io {
        shard: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("codec error: {0}")]
    Codec(String),
}
