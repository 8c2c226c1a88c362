//! The Cedar access policy of this source holder (placeholder, being written).
