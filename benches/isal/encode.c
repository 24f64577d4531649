/* ISA-L reference for the erasure bench: 12+4 (and the other geometries) encode of 1 MiB of
 * data per call, one core, the distribution's libisal (apt-get install libisal-dev).
 * Built and run by benches/isal.sh next to `cargo bench --bench erasure -- encode/rse`, so
 * both are measured in the same run. Prints "k+p GB/s" lines. */
#include <isa-l/erasure_code.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(void) {
    const int geometries[][2] = {{2, 2}, {4, 2}, {8, 4}, {12, 4}};
    for (unsigned g = 0; g < sizeof geometries / sizeof geometries[0]; g++) {
        int k = geometries[g][0], p = geometries[g][1];
        int len = ((1 << 20) / k + 63) / 64 * 64;
        unsigned char *matrix = malloc((size_t)(k + p) * k);
        unsigned char *tables = malloc((size_t)32 * k * p);
        unsigned char *data[16], *coding[16];
        for (int i = 0; i < k; i++) {
            data[i] = aligned_alloc(64, len);
            for (int j = 0; j < len; j++) data[i][j] = (unsigned char)(i * 31 + j * 7);
        }
        for (int i = 0; i < p; i++) coding[i] = aligned_alloc(64, len);
        gf_gen_rs_matrix(matrix, k + p, k);
        ec_init_tables(k, p, &matrix[k * k], tables);
        /* Warm up, then run for about two seconds. */
        for (int i = 0; i < 50; i++) ec_encode_data(len, k, p, tables, data, coding);
        long iters = 0;
        double start = now(), elapsed;
        do {
            for (int i = 0; i < 100; i++) ec_encode_data(len, k, p, tables, data, coding);
            iters += 100;
            elapsed = now() - start;
        } while (elapsed < 2.0);
        printf("%d+%d %.1f GB/s\n", k, p, (double)iters * k * len / elapsed / 1e9);
        for (int i = 0; i < k; i++) free(data[i]);
        for (int i = 0; i < p; i++) free(coding[i]);
        free(matrix);
        free(tables);
    }
    return 0;
}
