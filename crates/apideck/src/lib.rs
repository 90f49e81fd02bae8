//! Placeholder: the apideck provider arrives in its own issue.
