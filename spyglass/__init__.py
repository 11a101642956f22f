"""spyglass: distributed tracing that explains. Analyzes 100% of spans, keeps the traces that matter."""

from spyglass.numpy_sort_dispatch import keep_numpy_off_avx512_sort

__version__ = "0.1.0"

# Before any module of spyglass imports numpy, which reads its CPU dispatch settings once (numpy_sort_dispatch).
keep_numpy_off_avx512_sort()
