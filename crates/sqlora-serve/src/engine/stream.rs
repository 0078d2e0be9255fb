//! Stop strings and streaming: where a generated text ends, and which part of it may be sent
//! to a streaming client already (never a piece of a stop string, never half a character).

use tokio::sync::mpsc::UnboundedSender;

/// The byte offset of the first stop string in `text` (the model crate's, shared with
/// `generate`).
pub(super) use sqlora_model::generate::find_stop;

/// The longest prefix of `text` that cannot be the start of a stop string still being
/// written (so a streamed delta never shows part of a stop string).
fn safe_len(text: &str, stops: &[String]) -> usize {
    let mut cut = text.len();
    for s in stops.iter().filter(|s| !s.is_empty()) {
        for (i, _) in text.char_indices() {
            if i >= cut {
                break;
            }
            if s.starts_with(&text[i..]) {
                cut = i;
                break;
            }
        }
    }
    // A trailing replacement character may be half of a multi-byte character.
    while text[..cut].ends_with('\u{FFFD}') {
        cut -= '\u{FFFD}'.len_utf8();
    }
    cut
}

/// Sends the part of the growing `text` past `sent` bytes that can no longer turn into a stop
/// string, and moves `sent` on.
pub(super) fn send_safe(
    tx: Option<&UnboundedSender<String>>,
    sent: &mut usize,
    text: &str,
    stops: &[String],
) {
    if let Some(tx) = tx {
        let upto = safe_len(text, stops);
        if upto > *sent && text.is_char_boundary(*sent) {
            let _ = tx.send(text[*sent..upto].to_string());
            *sent = upto;
        }
    }
}

/// Sends whatever of the final `text` was not streamed yet (past `sent` bytes).
pub(super) fn send_rest(tx: Option<&UnboundedSender<String>>, sent: &mut usize, text: &str) {
    if let Some(tx) = tx {
        if text.len() > *sent && text.is_char_boundary(*sent) {
            let _ = tx.send(text[*sent..].to_string());
            *sent = text.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stops(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn a_possible_stop_string_start_is_held_back() {
        let st = stops(&["END"]);
        assert_eq!(safe_len("SELECT 1 EN", &st), 9);
        assert_eq!(safe_len("SELECT 1 E", &st), 9);
        assert_eq!(safe_len("SELECT 1 X", &st), 10);
        // Half a character (decoded as U+FFFD) waits for its other half.
        assert_eq!(safe_len("ab\u{FFFD}", &[]), 2);
    }

    #[test]
    fn deltas_add_up_to_the_text() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let st = stops(&["END"]);
        let mut sent = 0;
        send_safe(Some(&tx), &mut sent, "SELECT 1 E", &st);
        send_safe(Some(&tx), &mut sent, "SELECT 1 EX", &st);
        send_rest(Some(&tx), &mut sent, "SELECT 1 EXTRA");
        let mut got = Vec::new();
        while let Ok(d) = rx.try_recv() {
            got.push(d);
        }
        assert_eq!(got, ["SELECT 1 ", "EX", "TRA"]);
        assert_eq!(sent, "SELECT 1 EXTRA".len());
    }
}
