//! `midge-plugin`: write a Midge broker plugin as one trait impl (work in progress).
