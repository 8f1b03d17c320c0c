//! Reading response bodies within bounds: a token response up to its protocol's limit,
//! and a response set aside for a replay.

use bytes::{Buf, Bytes};
use http_body::Body;
use http_body_util::BodyExt;
use std::pin::pin;
use std::time::Duration;

/// Reads `body` up to `limit` + 1 bytes: enough for a parser to tell "too large".
/// Frames that are not data (trailers) are skipped.
pub async fn read_limited<B>(body: B, limit: usize) -> Result<Vec<u8>, B::Error>
where
    B: Body<Data = Bytes>,
{
    let mut body = pin!(body);
    let mut read = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(chunk) = frame?.into_data() {
            let room = (limit + 1).saturating_sub(read.len());
            read.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if read.len() > limit {
                break;
            }
        }
    }
    Ok(read)
}

/// Reads and drops the body of a response that will not reach the caller (a 401 about to
/// be replayed), bounded in size and time. Dropping it unread would reset its HTTP/2
/// stream, and a storm of such resets makes the client's own h2 layer give up the whole
/// connection (`ENHANCE_YOUR_CALM`, "too_many_internal_resets"); over HTTP/1.1 it would
/// close the connection instead of reusing it.
pub async fn discard<B: Body>(body: B) {
    const LIMIT: usize = 64 * 1024;
    const PATIENCE: Duration = Duration::from_secs(1);
    let mut body = pin!(body);
    let drain = async {
        let mut read = 0;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                read += data.remaining();
                if read > LIMIT {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(PATIENCE, drain).await;
}
