//! Placeholder: the tray provider arrives in its own issue.
