//! A turn's text as it grows, for a door that streams it (the
//! OpenAI-compatible `stream: true`): the follower brings it up to date with
//! what the turn collected after each event ([`Progress::sync`]), marking
//! where each event's addition ends, and the door sends on what was added
//! since it last looked, one piece per mark ([`Progress::pieces`]): as the
//! runtime streamed it, however late the door looks. A request whose turn
//! goes on in several parts (an approval the bridge answers continues it)
//! starts each with [`Progress::next_part`]: the parts' texts follow one
//! another a blank line apart, as separate assistant messages are joined.

/// The assistant's text and reasoning of a followed turn so far. Only ever
/// grows, so that what a door sent stays a prefix of it.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    text: Growing,
    reasoning: Growing,
    /// Where each addition ended: (text, reasoning) lengths. One per event
    /// that added something, so bounded as the turn's own events are.
    marks: Vec<(usize, usize)>,
}

impl Progress {
    /// The assistant's text so far.
    pub fn text(&self) -> &str {
        &self.text.all
    }

    /// The reasoning so far.
    pub fn reasoning(&self) -> &str {
        &self.reasoning.all
    }

    /// Brings this up to date with the current part's text and reasoning as
    /// collected so far; true when something was added. What no longer
    /// extends what was added (the events turned out to be another turn's)
    /// adds nothing.
    pub fn sync(&mut self, text: &str, reasoning: &str) -> bool {
        let added = self.text.sync(text);
        let added = self.reasoning.sync(reasoning) || added;
        if added {
            self.marks.push((self.text.all.len(), self.reasoning.all.len()));
        }
        added
    }

    /// How many additions there were so far.
    pub fn additions(&self) -> usize {
        self.marks.len()
    }

    /// The additions after the first `seen`, in order, each as (text,
    /// reasoning) it added (either may be empty).
    pub fn pieces(&self, seen: usize) -> impl Iterator<Item = (&str, &str)> {
        let start = seen.checked_sub(1).and_then(|i| self.marks.get(i)).copied().unwrap_or((0, 0));
        let from = std::iter::once(start).chain(self.marks.iter().skip(seen).copied());
        from.zip(self.marks.iter().skip(seen).copied())
            .map(|(from, to)| (&self.text.all[from.0..to.0], &self.reasoning.all[from.1..to.1]))
    }

    /// The turn goes on in a new part, collected from empty again.
    pub fn next_part(&mut self) {
        self.text.start = None;
        self.reasoning.start = None;
    }
}

/// One text of all parts, and where the current part's begins.
#[derive(Debug, Clone, Default)]
struct Growing {
    all: String,
    /// Where the current part's text begins in `all`; `None` until it has some.
    start: Option<usize>,
}

impl Growing {
    fn sync(&mut self, part: &str) -> bool {
        if part.is_empty() {
            return false;
        }
        let start = match self.start {
            Some(start) => start,
            None => {
                if !self.all.is_empty() {
                    self.all.push_str("\n\n");
                }
                *self.start.insert(self.all.len())
            }
        };
        let Some(rest) = part.strip_prefix(&self.all[start..]).filter(|rest| !rest.is_empty()) else {
            return false;
        };
        self.all.push_str(rest);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_adds_only_what_extends_the_part_so_far() {
        let mut p = Progress::default();
        assert!(!p.sync("", ""));
        assert!(p.sync("Hel", ""));
        assert!(p.sync("Hello", "thinking"));
        assert!(!p.sync("Hello", "thinking"));
        assert_eq!((p.text(), p.reasoning()), ("Hello", "thinking"));
        let pieces: Vec<_> = p.pieces(0).collect();
        assert_eq!(pieces, [("Hel", ""), ("lo", "thinking")], "one piece per addition");
        assert_eq!(p.pieces(1).collect::<Vec<_>>(), [("lo", "thinking")]);
        assert_eq!(p.pieces(2).count(), 0);
        // Another turn's text, not an extension of ours: nothing is taken back or added.
        assert!(!p.sync("Other", "thinking"));
        assert_eq!(p.text(), "Hello");
    }

    #[test]
    fn the_parts_of_a_turn_follow_one_another_a_blank_line_apart() {
        let mut p = Progress::default();
        p.sync("First.", "");
        p.next_part();
        assert!(!p.sync("", ""), "an empty part adds no separator");
        assert_eq!(p.text(), "First.");
        assert!(p.sync("Sec", "why"));
        assert!(p.sync("Second.", "why"));
        assert_eq!((p.text(), p.reasoning()), ("First.\n\nSecond.", "why"));
        assert_eq!(p.pieces(1).collect::<Vec<_>>(), [("\n\nSec", "why"), ("ond.", "")]);
    }
}
