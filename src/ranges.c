/* Operations on sorted, disjoint task ranges (see ranges.h). Pure. */
#include "ranges.h"

size_t mpmap__ranges_translate(const mpmap_range *pending, const int64_t *offsets, size_t n,
                               int64_t vbegin, int64_t vend, mpmap_range *out, size_t outcap)
{
    /* Binary search for the pending range holding vbegin. */
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (offsets[mid] <= vbegin)
            lo = mid;
        else
            hi = mid;
    }
    size_t count = 0;
    for (size_t i = lo; i < n && vbegin < vend; i++) {
        int64_t skip = vbegin - offsets[i];
        int64_t avail = (pending[i].end - pending[i].begin) - skip;
        if (avail <= 0)
            continue;
        int64_t take = avail < vend - vbegin ? avail : vend - vbegin;
        if (count < outcap)
            out[count] = (mpmap_range){ pending[i].begin + skip, pending[i].begin + skip + take };
        count++;
        vbegin += take;
    }
    return count;
}

size_t mpmap__ranges_complement(const mpmap_range *done, size_t ndone, int64_t total,
                                mpmap_range *out)
{
    size_t count = 0;
    int64_t at = 0;
    for (size_t i = 0; i < ndone; i++) {
        if (done[i].begin > at)
            out[count++] = (mpmap_range){ at, done[i].begin };
        if (done[i].end > at)
            at = done[i].end;
    }
    if (at < total)
        out[count++] = (mpmap_range){ at, total };
    return count;
}
