"""The bottom layer: what every other layer may use and which uses none of them.

Errors (:mod:`.errors`), the one registry pattern (:mod:`.registry`), devices and seeds
(:mod:`.devices`), atomic file I/O (:mod:`.atomic`, :mod:`.weights`, :mod:`.images`), the CPU
allocator switch (:mod:`.allocator`) and the statistics tests that claims and gates share
(:mod:`.statistics`).
"""
