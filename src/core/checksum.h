/* checksum.h: XXH64 (Yann Collet's xxHash, 64-bit variant), the checksum of
 * the .eng format (docs/FORMAT.md). Chosen because it detects any bit flip
 * and runs at memory speed, so verifying a whole model at every load costs
 * about as much as reading it once; it is not cryptographic and guards
 * against corruption, not against forgery. */
#ifndef ENG_CHECKSUM_H
#define ENG_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* XXH64 of buf[0..len) with the given seed; equal to the reference
 * XXH64(buf, len, seed). */
uint64_t eng__xxh64(const void *buf, size_t len, uint64_t seed);

#endif
