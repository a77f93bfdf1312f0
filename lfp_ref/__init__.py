"""lfp_ref: Layer-wise Feedback Propagation, the transparent reference implementation."""
