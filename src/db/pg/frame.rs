//! The frame reader: bytes in, one backend message or "need more" out. No I/O,
//! so that every malformed input is a unit test.
//!
//! A message is a tag byte, a 4-byte big-endian length that counts itself but not
//! the tag, and the body. The length is checked against the limits before a byte
//! of the body is buffered: a `DataRow` longer than the row limit, or any other
//! message longer than [`MAX_OTHER_MESSAGE`], is refused as soon as its header is
//! in. That is what bounds the memory of a `SELECT repeat('x', 300000000)` or of a
//! server that announces a 2 GB notice.

use bytes::BytesMut;
use postgres_protocol::message::backend::{DATA_ROW_TAG, Message};

/// The largest message other than a row: row descriptions of 1,600 columns,
/// long error messages and notices fit with room to spare.
pub(crate) const MAX_OTHER_MESSAGE: usize = 4 * 1024 * 1024;

/// A row's framing beyond its values: field count and one length per field are
/// part of the values' own budget; this is the slack for the header.
const ROW_HEADER_SLACK: usize = 64;

/// Why the bytes are not a message this reader accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// The length field is below 4 (it counts itself), negative included.
    #[error("message '{}' announces a length of {length}", char::from(*tag))]
    BadLength {
        /// The message's tag.
        tag: u8,
        /// The length field as sent.
        length: i32,
    },
    /// A `DataRow` longer than the row limit (`MAX_ROW_BYTES`).
    #[error("a row of {length} bytes is over the limit of {limit}")]
    RowTooLarge {
        /// The row's length on the wire.
        length: usize,
        /// `MAX_ROW_BYTES`.
        limit: usize,
    },
    /// Any other message longer than [`MAX_OTHER_MESSAGE`].
    #[error("message '{}' of {length} bytes is over the limit of {limit}", char::from(*tag))]
    TooLong {
        /// The message's tag.
        tag: u8,
        /// Its length on the wire.
        length: usize,
        /// [`MAX_OTHER_MESSAGE`].
        limit: usize,
    },
    /// The tag is unknown or the body does not parse as the message it names.
    #[error("message '{}' is malformed", char::from(*tag))]
    Malformed {
        /// The message's tag.
        tag: u8,
    },
}

/// Takes the next whole message off the front of `buffer`: `Ok(None)` when more
/// bytes are needed (nothing is consumed then), an error when the bytes cannot
/// be a message within `max_row_bytes`.
pub(crate) fn next(
    buffer: &mut BytesMut,
    max_row_bytes: usize,
) -> Result<Option<Message>, FrameError> {
    let Some((tag, length)) = header(buffer, max_row_bytes)? else {
        return Ok(None);
    };
    if buffer.len() <= length {
        return Ok(None);
    }
    match Message::parse(buffer) {
        Ok(Some(message)) => Ok(Some(message)),
        Ok(None) | Err(_) => Err(FrameError::Malformed { tag }),
    }
}

/// How many bytes the message at the front of `buffer` takes in all, once its
/// header is in and within the limits; for reserving room before reading.
pub(crate) fn wanted(buffer: &[u8], max_row_bytes: usize) -> Result<Option<usize>, FrameError> {
    Ok(header(buffer, max_row_bytes)?.map(|(_, length)| length + 1))
}

/// The tag and length of the message at the front of `buffer`, checked.
fn header(buffer: &[u8], max_row_bytes: usize) -> Result<Option<(u8, usize)>, FrameError> {
    let Some(&[tag, a, b, c, d]) = buffer.get(..5) else {
        return Ok(None);
    };
    let raw = i32::from_be_bytes([a, b, c, d]);
    let length = usize::try_from(raw)
        .ok()
        .filter(|length| *length >= 4)
        .ok_or(FrameError::BadLength { tag, length: raw })?;
    if tag == DATA_ROW_TAG {
        if length > max_row_bytes.saturating_add(ROW_HEADER_SLACK) {
            return Err(FrameError::RowTooLarge {
                length,
                limit: max_row_bytes,
            });
        }
    } else if length > MAX_OTHER_MESSAGE {
        return Err(FrameError::TooLong {
            tag,
            length,
            limit: MAX_OTHER_MESSAGE,
        });
    }
    Ok(Some((tag, length)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&(i32::try_from(body.len() + 4).unwrap_or(i32::MAX)).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn read(bytes: &[u8], max_row: usize) -> (Result<Option<&'static str>, FrameError>, usize) {
        let mut buffer = BytesMut::from(bytes);
        let result = next(&mut buffer, max_row).map(|message| message.as_ref().map(name));
        (result, buffer.len())
    }

    fn name(message: &Message) -> &'static str {
        match message {
            Message::ReadyForQuery(_) => "ReadyForQuery",
            Message::DataRow(_) => "DataRow",
            Message::CommandComplete(_) => "CommandComplete",
            Message::ParseComplete => "ParseComplete",
            _ => "other",
        }
    }

    #[test]
    fn whole_messages_are_taken_one_at_a_time() {
        let mut bytes = frame(b'1', b"");
        bytes.extend(frame(b'Z', b"I"));
        let mut buffer = BytesMut::from(bytes.as_slice());
        let mut take = || next(&mut buffer, 100).map(|m| m.as_ref().map(name));
        assert_eq!(take(), Ok(Some("ParseComplete")));
        assert_eq!(take(), Ok(Some("ReadyForQuery")));
        assert_eq!(take(), Ok(None));
    }

    #[test]
    fn every_prefix_of_a_message_asks_for_more_and_consumes_nothing() {
        let whole = frame(b'C', b"SELECT 1\0");
        for cut in 0..whole.len() {
            assert_eq!(read(&whole[..cut], 100), (Ok(None), cut), "cut at {cut}");
        }
        assert_eq!(read(&whole, 100), (Ok(Some("CommandComplete")), 0));
    }

    #[test]
    fn lengths_below_four_and_negative_lengths_are_refused() {
        for length in [i32::MIN, -1, 0, 3] {
            let mut bytes = vec![b'Z'];
            bytes.extend_from_slice(&length.to_be_bytes());
            assert_eq!(
                read(&bytes, 100).0,
                Err(FrameError::BadLength { tag: b'Z', length })
            );
        }
    }

    #[test]
    fn a_row_over_the_limit_is_refused_from_its_header_alone() {
        let mut header = vec![b'D'];
        header.extend_from_slice(&i32::MAX.to_be_bytes());
        let usize_max = usize::try_from(i32::MAX).unwrap_or(usize::MAX);
        assert_eq!(
            read(&header, 1_000).0,
            Err(FrameError::RowTooLarge {
                length: usize_max,
                limit: 1_000
            })
        );
        assert_eq!(wanted(&header, 1_000).map_err(|_| ()), Err(()));
    }

    #[test]
    fn other_messages_over_their_limit_are_refused_from_their_header() {
        let mut header = vec![b'N'];
        header.extend_from_slice(&(5 * 1024 * 1024_i32).to_be_bytes());
        assert_eq!(
            read(&header, usize::MAX).0,
            Err(FrameError::TooLong {
                tag: b'N',
                length: 5 * 1024 * 1024,
                limit: MAX_OTHER_MESSAGE
            })
        );
    }

    #[test]
    fn unknown_tags_and_bodies_that_do_not_parse_are_malformed() {
        assert_eq!(
            read(&frame(b'@', b""), 100).0,
            Err(FrameError::Malformed { tag: b'@' })
        );
        // A ReadyForQuery whose body is empty, and a DataRow that says it has
        // fields but has no field count.
        assert_eq!(
            read(&frame(b'Z', b""), 100).0,
            Err(FrameError::Malformed { tag: b'Z' })
        );
        assert_eq!(
            read(&frame(b'D', b"\x00"), 100).0,
            Err(FrameError::Malformed { tag: b'D' })
        );
    }

    #[test]
    fn wanted_is_the_whole_message_once_the_header_is_in() {
        let whole = frame(b'C', b"SELECT 1\0");
        assert_eq!(wanted(&whole[..4], 100), Ok(None));
        assert_eq!(wanted(&whole[..5], 100), Ok(Some(whole.len())));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Whatever the bytes, the reader takes whole messages, asks for more,
        /// or refuses — it never panics and never holds more than it was given.
        #[test]
        fn random_bytes_never_panic_nor_grow_the_buffer(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buffer = BytesMut::from(bytes.as_slice());
            for _ in 0..bytes.len() + 1 {
                let before = buffer.len();
                match next(&mut buffer, 256) {
                    Ok(Some(_)) => prop_assert!(buffer.len() < before),
                    Ok(None) => {
                        prop_assert_eq!(buffer.len(), before);
                        break;
                    }
                    Err(_) => break,
                }
            }
            prop_assert!(buffer.capacity() <= bytes.len().max(64));
        }

        /// Valid messages with one byte changed: same guarantees.
        #[test]
        fn mutated_messages_never_panic(position in 0usize..64, byte in any::<u8>()) {
            let mut bytes = Vec::new();
            for (tag, body) in [
                (b'D', &b"\x00\x02\x00\x00\x00\x01x\xff\xff\xff\xff"[..]),
                (b'T', &b"\x00\x01a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x01"[..]),
                (b'E', &b"SERROR\x00C42P01\x00Mno\x00\x00"[..]),
                (b'Z', &b"I"[..]),
            ] {
                bytes.push(tag);
                bytes.extend_from_slice(&i32::try_from(body.len() + 4).unwrap_or(0).to_be_bytes());
                bytes.extend_from_slice(body);
            }
            if let Some(slot) = bytes.get_mut(position) {
                *slot = byte;
            }
            let mut buffer = BytesMut::from(bytes.as_slice());
            while let Ok(Some(_)) = next(&mut buffer, 256) {}
        }
    }
}
