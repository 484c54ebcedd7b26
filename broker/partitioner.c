/* partitioner.c -- which Kafka partition a key lives in: Java murmur2, librdkafka crc32, or all. */
#include "broker/partitioner.h"

#include <string.h>

int partitioner_parse(const char *name) {
    if (strcmp(name, "murmur2") == 0) return PARTITIONER_MURMUR2;
    if (strcmp(name, "crc32") == 0) return PARTITIONER_CRC32;
    if (strcmp(name, "all") == 0) return PARTITIONER_ALL;
    return -1;
}

const char *partitioner_name(partitioner p) {
    switch (p) {
    case PARTITIONER_MURMUR2: return "murmur2";
    case PARTITIONER_CRC32: return "crc32";
    case PARTITIONER_ALL: return "all";
    }
    return "?";
}

int32_t partitioner_murmur2(const void *key, size_t len) {
    /* Java does this arithmetic in signed 32-bit ints with wrap-around and
     * >>> (logical) shifts; unsigned arithmetic gives the same bits. */
    const uint8_t *data = key;
    const uint32_t m = 0x5bd1e995;
    const int r = 24;
    uint32_t h = 0x9747b28c ^ (uint32_t)len;
    size_t len4 = len / 4;
    for (size_t i = 0; i < len4; i++) {
        size_t i4 = i * 4;
        uint32_t k = (uint32_t)data[i4] | (uint32_t)data[i4 + 1] << 8 |
                     (uint32_t)data[i4 + 2] << 16 | (uint32_t)data[i4 + 3] << 24;
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    size_t tail = len & ~(size_t)3;
    switch (len % 4) {
    case 3: h ^= (uint32_t)data[tail + 2] << 16; /* fall through */
    case 2: h ^= (uint32_t)data[tail + 1] << 8;  /* fall through */
    case 1: h ^= data[tail]; h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (int32_t)h;
}

uint32_t partitioner_crc32(const void *key, size_t len) {
    static uint32_t table[256];
    static int ready;
    if (!ready) {
        /* Filled once, before any thread but the loop calls us; idempotent anyway. */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    const uint8_t *p = key;
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < len; i++) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return crc ^ 0xffffffffu;
}

int32_t partitioner_partition(partitioner p, const void *key, size_t len, int32_t cnt) {
    if (cnt <= 0) return -1;
    switch (p) {
    case PARTITIONER_MURMUR2:
        return (int32_t)(((uint32_t)partitioner_murmur2(key, len) & 0x7fffffffu) % (uint32_t)cnt);
    case PARTITIONER_CRC32:
        return (int32_t)(partitioner_crc32(key, len) % (uint32_t)cnt);
    case PARTITIONER_ALL:
        return -1;
    }
    return -1;
}
