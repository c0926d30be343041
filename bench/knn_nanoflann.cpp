/*
 * Baseline of knn_query: exact k nearest neighbours with nanoflann (Debian
 * libnanoflann-dev, 1.4.3 API), threads sharing one KD-tree.
 *
 *     knn_nanoflann DATA.h5:/DATASET QUERIES.h5:/DATASET K OUT.h5 [THREADS [LEAF]]
 *
 * Reads the same n x d and m x d float64 datasets knn_query is given, builds
 * one KDTreeSingleIndexAdaptor over the points (metric L2_Simple, leaf size
 * LEAF, default 16), answers the m queries with THREADS threads (default 2)
 * that take blocks of queries from a shared counter, and writes OUT.h5 with
 * /index (int64, m x k) and /distance (float64, m x k), as knn_query does.
 * The last line of stdout is a JSON object with the phase times.
 *
 * Same answers as knn_query, by construction of the arithmetic:
 *   - L2_Simple sums (q_j - x_j)^2 left to right from 0, exactly knn_query's
 *     squared distance; contraction into FMA is off (-ffp-contract=off at
 *     compile time), and the reported distance is sqrt of that sum;
 *   - NANOFLANN_FIRST_MATCH orders equal distances by lower row, as
 *     knn_query does. One difference remains: a point whose distance equals
 *     the current k-th best is not admitted (nanoflann keeps `dist < worst`),
 *     so on an exact tie at the k-th place nanoflann keeps the row it met
 *     first in tree order, not always the lower row. The bench therefore
 *     accepts a row whose indices differ only where the distances tie.
 * eps = 0 (exact search). The dimension is a compile-time constant for the
 * common small d (nanoflann then keeps its per-query bounds in a std::array
 * instead of allocating a vector per query), run-time otherwise.
 */
#define NANOFLANN_FIRST_MATCH 1
#include <nanoflann.hpp>

#include <hdf5.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace
{

/* Queries a thread takes from the shared counter at a time: large enough
 * that the counter costs nothing, small enough to even the finish. */
constexpr int64_t kBlock = 512;

struct Matrix {
    std::vector<double> v;
    int64_t rows = 0, cols = 0;
};

/* Row-major points as nanoflann's dataset adaptor. */
struct Points {
    const Matrix &m;
    size_t kdtree_get_point_count() const { return (size_t)m.rows; }
    double kdtree_get_pt(size_t i, size_t j) const { return m.v[i * (size_t)m.cols + j]; }
    template <class Box> bool kdtree_get_bbox(Box &) const { return false; }
};

double now()
{
    using clock = std::chrono::steady_clock;
    return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

[[noreturn]] void die(const std::string &what)
{
    std::fprintf(stderr, "knn_nanoflann: %s\n", what.c_str());
    std::exit(1);
}

/* FILE.h5:/DATASET, a 2-D float64 dataset, into m. */
void read_matrix(const std::string &spec, Matrix &m)
{
    size_t colon = spec.rfind(':');
    if (colon == std::string::npos || colon == 0)
        die("'" + spec + "' is not FILE.h5:/DATASET");
    std::string file = spec.substr(0, colon), name = spec.substr(colon + 1);
    hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        die("cannot open " + file);
    hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
    if (d < 0)
        die("no dataset " + name + " in " + file);
    hid_t space = H5Dget_space(d);
    hsize_t dims[2] = { 0, 0 };
    if (space < 0 || H5Sget_simple_extent_ndims(space) != 2 ||
        H5Sget_simple_extent_dims(space, dims, nullptr) < 0)
        die(spec + " is not a 2-D dataset");
    m.rows = (int64_t)dims[0];
    m.cols = (int64_t)dims[1];
    m.v.resize((size_t)(dims[0] * dims[1]));
    if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, m.v.data()) < 0)
        die("cannot read " + spec);
    H5Sclose(space);
    H5Dclose(d);
    H5Fclose(f);
}

void write_results(const std::string &file, int64_t m, int k, const std::vector<int64_t> &index,
                   const std::vector<double> &dist)
{
    hid_t f = H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        die("cannot create " + file);
    hsize_t dims[2] = { (hsize_t)m, (hsize_t)k };
    hid_t space = H5Screate_simple(2, dims, nullptr);
    struct {
        const char *name;
        hid_t file_type, memory_type;
        const void *data;
    } sets[] = { { "index", H5T_STD_I64LE, H5T_NATIVE_INT64, index.data() },
                 { "distance", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, dist.data() } };
    for (const auto &s : sets) {
        hid_t d = H5Dcreate2(f, s.name, s.file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (d < 0 || H5Dwrite(d, s.memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, s.data) < 0)
            die(std::string("cannot write /") + s.name + " to " + file);
        H5Dclose(d);
    }
    H5Sclose(space);
    if (H5Fclose(f) < 0)
        die("cannot close " + file);
}

struct Times {
    double build = 0, query = 0;
};

/* Builds the tree (one thread, nanoflann 1.4 builds serially) and answers
 * every query with `threads` threads. */
template <int DIM>
Times search(const Matrix &data, const Matrix &queries, int k, int threads, size_t leaf,
             std::vector<int64_t> &index, std::vector<double> &dist)
{
    using Tree = nanoflann::KDTreeSingleIndexAdaptor<nanoflann::L2_Simple_Adaptor<double, Points>,
                                                     Points, DIM, uint32_t>;
    Times t;
    double start = now();
    Points points{ data };
    Tree tree((int)data.cols, points, nanoflann::KDTreeSingleIndexAdaptorParams(leaf));
    t.build = now() - start;

    start = now();
    std::atomic<int64_t> next{ 0 };
    const int64_t m = queries.rows;
    auto worker = [&]() {
        std::vector<uint32_t> rows((size_t)k);
        std::vector<double> d2((size_t)k);
        for (;;) {
            int64_t begin = next.fetch_add(kBlock, std::memory_order_relaxed);
            if (begin >= m)
                return;
            int64_t end = begin + kBlock < m ? begin + kBlock : m;
            for (int64_t q = begin; q < end; q++) {
                nanoflann::KNNResultSet<double, uint32_t> result((size_t)k);
                result.init(rows.data(), d2.data());
                tree.findNeighbors(result, &queries.v[(size_t)(q * queries.cols)],
                                   nanoflann::SearchParams(32, 0.0f));
                for (int j = 0; j < k; j++) {
                    index[(size_t)(q * k + j)] = rows[(size_t)j];
                    dist[(size_t)(q * k + j)] = std::sqrt(d2[(size_t)j]);
                }
            }
        }
    };
    std::vector<std::thread> pool;
    for (int i = 1; i < threads; i++)
        pool.emplace_back(worker);
    worker();
    for (auto &th : pool)
        th.join();
    t.query = now() - start;
    return t;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 7) {
        std::fprintf(stderr, "usage: knn_nanoflann DATA.h5:/DATASET QUERIES.h5:/DATASET K OUT.h5 "
                             "[THREADS [LEAF]]\n");
        return 2;
    }
    const int k = std::atoi(argv[3]);
    const int threads = argc > 5 ? std::atoi(argv[5]) : 2;
    const size_t leaf = argc > 6 ? (size_t)std::atol(argv[6]) : 16;
    if (k < 1 || threads < 1 || leaf < 1)
        die("K, THREADS and LEAF must be positive");

    double start = now();
    Matrix data, queries;
    read_matrix(argv[1], data);
    read_matrix(argv[2], queries);
    if (data.cols != queries.cols || data.cols < 1)
        die("the data and the queries need the same, positive number of columns");
    if (k > data.rows)
        die("K exceeds the number of points");
    double read_s = now() - start;

    std::vector<int64_t> index((size_t)(queries.rows * k));
    std::vector<double> dist(index.size());
    Times t;
    switch (data.cols) {
    case 2: t = search<2>(data, queries, k, threads, leaf, index, dist); break;
    case 3: t = search<3>(data, queries, k, threads, leaf, index, dist); break;
    case 4: t = search<4>(data, queries, k, threads, leaf, index, dist); break;
    case 8: t = search<8>(data, queries, k, threads, leaf, index, dist); break;
    default: t = search<-1>(data, queries, k, threads, leaf, index, dist); break;
    }

    start = now();
    write_results(argv[4], queries.rows, k, index, dist);
    double write_s = now() - start;
    std::printf("{\"points\": %lld, \"queries\": %lld, \"dim\": %lld, \"k\": %d, \"threads\": %d, "
                "\"leaf_size\": %zu, \"read_s\": %.6f, \"build_s\": %.6f, \"query_s\": %.6f, "
                "\"write_s\": %.6f}\n",
                (long long)data.rows, (long long)queries.rows, (long long)data.cols, k, threads,
                leaf, read_s, t.build, t.query, write_s);
    return 0;
}
