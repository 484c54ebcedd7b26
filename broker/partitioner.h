/* partitioner.h -- which Kafka partition a key lives in: Java murmur2, librdkafka crc32, or all. */
#ifndef SUBWAY_PARTITIONER_H
#define SUBWAY_PARTITIONER_H

#include <stddef.h>
#include <stdint.h>

typedef enum partitioner {
    PARTITIONER_MURMUR2 = 0,      /* Kafka Java client default (and librdkafka murmur2_random) */
    PARTITIONER_CRC32 = 1,        /* librdkafka default consistent_random / consistent */
    PARTITIONER_ALL = 2,          /* unknown producer: read every partition, filter by key */
} partitioner;

/* Parses "murmur2", "crc32", "all"; returns -1 for anything else. */
int partitioner_parse(const char *name);
const char *partitioner_name(partitioner p);

/* Kafka's murmur2 (Utils.murmur2 in the Java client, seed 0x9747b28c). */
int32_t partitioner_murmur2(const void *key, size_t len);

/* CRC-32 (IEEE, zlib's), as librdkafka's rd_crc32. */
uint32_t partitioner_crc32(const void *key, size_t len);

/* The partition a non-empty key goes to among cnt partitions, or -1 for
 * PARTITIONER_ALL. Java: toPositive(murmur2(key)) % cnt. */
int32_t partitioner_partition(partitioner p, const void *key, size_t len, int32_t cnt);

#endif
