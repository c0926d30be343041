// MR-MPI baseline for word_count: the wordfreq example of the MapReduce-MPI
// library (Sandia; Debian's libmrmpi-dev), with the same word definition as
// apps/word_count.c (runs of bytes other than ASCII whitespace and NUL).
//
//     mpirun -n 2 mrmpi_wordfreq [--compress] [--chunks N] [--dump FILE] FILE...
//
// As in wordfreq.cpp: map (every word a key with an empty value), collate
// (aggregate to owners + convert to key/multivalue), reduce (count = number
// of values), sort_values by count descending, gather to rank 0.
// Files are split into N chunks at newlines (MR-MPI's map(nmap, nstr, ...,
// sepchar, delta, ...)); default 4 per rank... times the file count.
// --compress adds MR-MPI's combiner (compress: a local reduce before
// collate), the fair comparison with mpmap's local hash combine.
// --dump writes "count word" lines on rank 0 (count descending, then word).
// Prints one line of figures: words, distinct words, seconds.
#include <mpi.h>
#include <mrmpi/keyvalue.h>
#include <mrmpi/mapreduce.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

using namespace MAPREDUCE_NS;

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == 0;
}

// One chunk of a file (MR-MPI hands the text, ended at a separator).
static void chunk_words(int, char *text, int size, KeyValue *kv, void *)
{
    int i = 0;
    while (i < size) {
        while (i < size && is_space((unsigned char)text[i]))
            i++;
        int start = i;
        while (i < size && !is_space((unsigned char)text[i]))
            i++;
        if (i > start)
            kv->add(text + start, i - start, NULL, 0);
    }
}

// Combiner and reducer: a key's count, as int64 (wordfreq uses int).
static void sum_empty(char *key, int keybytes, char *, int nvalues, int *, KeyValue *kv, void *)
{
    int64_t n = nvalues;
    kv->add(key, keybytes, (char *)&n, sizeof n);
}

static void sum_counts(char *key, int keybytes, char *multivalue, int nvalues, int *valuebytes,
                       KeyValue *kv, void *)
{
    int64_t n = 0;
    if (valuebytes && valuebytes[0] == 0) { // empty values: count them
        n = nvalues;
    } else {
        for (int i = 0; i < nvalues; i++) {
            int64_t v;
            memcpy(&v, multivalue + (size_t)i * sizeof v, sizeof v);
            n += v;
        }
    }
    kv->add(key, keybytes, (char *)&n, sizeof n);
}

static int count_desc(char *a, int, char *b, int)
{
    int64_t x, y;
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    return x > y ? -1 : x < y ? 1 : 0;
}

struct dump_state {
    std::vector<std::pair<int64_t, std::string>> rows;
    int64_t total = 0;
};

static void collect(uint64_t, char *key, int keybytes, char *value, int, KeyValue *, void *ptr)
{
    dump_state *d = (dump_state *)ptr;
    int64_t n;
    memcpy(&n, value, sizeof n);
    d->total += n;
    d->rows.emplace_back(n, std::string(key, (size_t)keybytes));
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    bool compress = false;
    int chunks = 0;
    const char *dump = NULL;
    std::vector<char *> files;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--compress"))
            compress = true;
        else if (!strcmp(argv[i], "--chunks") && i + 1 < argc)
            chunks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
            dump = argv[++i];
        else
            files.push_back(argv[i]);
    }
    if (files.empty()) {
        if (rank == 0)
            fprintf(stderr,
                    "usage: mrmpi_wordfreq [--compress] [--chunks N] [--dump FILE] FILE...\n");
        MPI_Finalize();
        return 2;
    }
    if (chunks <= 0)
        chunks = 4 * size * (int)files.size();

    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    MapReduce *mr = new MapReduce(MPI_COMM_WORLD);
    mr->verbosity = 0;
    mr->timer = 0;
    mr->set_fpath("/tmp");
    // Chunks end at a newline, looked for up to 4 KiB away (recurse 0, readfile 0).
    uint64_t nwords =
        mr->map(chunks, (int)files.size(), files.data(), 0, 0, '\n', 4096, chunk_words, NULL);
    if (compress)
        mr->compress(sum_empty, NULL);
    mr->collate(NULL);
    uint64_t nunique = mr->reduce(sum_counts, NULL);
    mr->gather(1);
    mr->sort_values(count_desc);
    double t1 = MPI_Wtime();

    dump_state d;
    mr->map(mr, collect, &d);
    if (rank == 0) {
        if (dump) {
            // Ties by word bytewise, like word_count (sort_values leaves them unordered).
            std::stable_sort(d.rows.begin(), d.rows.end(), [](const auto &a, const auto &b) {
                return a.first != b.first ? a.first > b.first : a.second < b.second;
            });
            FILE *f = fopen(dump, "w");
            for (const auto &r : d.rows)
                fprintf(f, "%lld %s\n", (long long)r.first, r.second.c_str());
            fclose(f);
        }
        printf("mrmpi_wordfreq: words %llu distinct %llu total %lld ranks %d compress %d "
               "seconds %.3f\n",
               (unsigned long long)nwords, (unsigned long long)nunique, (long long)d.total, size,
               compress ? 1 : 0, t1 - t0);
    }
    delete mr;
    MPI_Finalize();
    return 0;
}
