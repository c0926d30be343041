/*
 * Why two job fingerprints differ, in one short phrase (see
 * mpmap_fingerprint_diff in mpmap.h). Used where a run is refused for being
 * another job: the checkpoint's resume check, and the app kit's decision
 * about an existing output. A pure function of its arguments.
 *
 * A fingerprint is "APP --flag=value ... key=value ...": the app, its flags
 * in table order, then parts that name the input (e.g. "data=NxD:HASH").
 */
#include "mpmap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest value shown in a difference; the rest is "...". */
#define FP_VALUE_SHOWN 60

__attribute__((format(printf, 4, 5))) static int fail(char *why, size_t whylen, int code,
                                                      const char *fmt, ...)
{
    if (why && whylen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return code;
}

typedef struct fp_token {
    const char *key;
    size_t key_len;
    const char *value; /* NULL for a bare flag */
    size_t value_len;
    int flag; /* "--name..." or "-k..." */
} fp_token;

/* Splits a fingerprint at spaces. Returns the token count (at most max). */
static size_t fp_split(const char *s, size_t len, fp_token *t, size_t max)
{
    size_t n = 0, i = 0;
    while (i < len && n < max) {
        while (i < len && s[i] == ' ')
            i++;
        if (i >= len)
            break;
        size_t start = i;
        while (i < len && s[i] != ' ')
            i++;
        const char *tok = s + start;
        size_t tl = i - start;
        const char *eq = memchr(tok, '=', tl);
        t[n].key = tok;
        t[n].key_len = eq ? (size_t)(eq - tok) : tl;
        t[n].value = eq ? eq + 1 : NULL;
        t[n].value_len = eq ? tl - t[n].key_len - 1 : 0;
        t[n].flag = n > 0 && tok[0] == '-';
        n++;
    }
    return n;
}

static int same_key(const fp_token *a, const fp_token *b)
{
    return a->flag == b->flag && a->key_len == b->key_len &&
           memcmp(a->key, b->key, a->key_len) == 0;
}

static int same_value(const fp_token *a, const fp_token *b)
{
    if (!a->value || !b->value)
        return !a->value && !b->value;
    return a->value_len == b->value_len && memcmp(a->value, b->value, a->value_len) == 0;
}

/* The k-th token (0-based among those with t's key) in list, or NULL. */
static const fp_token *find_nth(const fp_token *list, size_t n, const fp_token *t, size_t k)
{
    for (size_t i = 1; i < n; i++)
        if (same_key(&list[i], t) && k-- == 0)
            return &list[i];
    return NULL;
}

/* Which occurrence of its key t is in its own list. */
static size_t occurrence(const fp_token *list, const fp_token *t)
{
    size_t k = 0;
    for (const fp_token *p = list + 1; p < t; p++)
        if (same_key(p, t))
            k++;
    return k;
}

static void show_value(const fp_token *t, char *buf, size_t len)
{
    if (!t->value)
        snprintf(buf, len, "set");
    else if (t->value_len > FP_VALUE_SHOWN)
        snprintf(buf, len, "%.*s...", FP_VALUE_SHOWN, t->value);
    else
        snprintf(buf, len, "%.*s", (int)t->value_len, t->value);
}

/* A non-flag part that names input data: "data=NxD:HASH", "queries=...". */
static int is_data_token(const fp_token *t)
{
    if (!t->value)
        return 0;
    return memchr(t->value, ':', t->value_len) != NULL ||
           (t->key_len == 4 && memcmp(t->key, "data", 4) == 0) ||
           (t->key_len == 5 && memcmp(t->key, "input", 5) == 0);
}

/* First difference between the tokens of kind `flag` of a and b, or 0. */
static int diff_kind(const fp_token *a, size_t na, const fp_token *b, size_t nb, int flag,
                     char *why, size_t whylen)
{
    char va[FP_VALUE_SHOWN + 8], vb[FP_VALUE_SHOWN + 8];
    /* In the order of the new fingerprint, then what only the old one had. */
    for (size_t i = 1; i < nb; i++) {
        if (b[i].flag != flag)
            continue;
        const fp_token *old = find_nth(a, na, &b[i], occurrence(b, &b[i]));
        if (old && same_value(old, &b[i]))
            continue;
        if (!flag && is_data_token(&b[i]))
            return fail(why, whylen, 1, "input data changed");
        show_value(&b[i], vb, sizeof vb);
        if (!old)
            return fail(why, whylen, 1, "%.*s: given now (%s), not before", (int)b[i].key_len,
                        b[i].key, vb);
        show_value(old, va, sizeof va);
        return fail(why, whylen, 1, "%.*s: was %s, now %s", (int)b[i].key_len, b[i].key, va, vb);
    }
    for (size_t i = 1; i < na; i++) {
        if (a[i].flag != flag || find_nth(b, nb, &a[i], occurrence(a, &a[i])))
            continue;
        if (!flag && is_data_token(&a[i]))
            return fail(why, whylen, 1, "input data changed");
        show_value(&a[i], va, sizeof va);
        return fail(why, whylen, 1, "%.*s: given before (%s), not now", (int)a[i].key_len, a[i].key,
                    va);
    }
    return 0;
}

int mpmap_fingerprint_diff(const char *was, size_t was_len, const char *now, int flags_only,
                           char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = '\0';
    if (!was)
        was = "";
    if (!now)
        now = "";
    size_t now_len = strlen(now);
    if (was_len == now_len && memcmp(was, now, now_len) == 0)
        return 0;
    /* Sized by the texts, so no part is ever left out of the comparison. */
    size_t max_a = was_len / 2 + 2, max_b = now_len / 2 + 2;
    fp_token *a = malloc(max_a * sizeof *a), *b = malloc(max_b * sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return fail(why, whylen, 1, "the arguments differ");
    }
    size_t na = fp_split(was, was_len, a, max_a), nb = fp_split(now, now_len, b, max_b);
    int rc = 0;
    if (na == 0 || nb == 0 || a[0].key_len != b[0].key_len ||
        memcmp(a[0].key, b[0].key, a[0].key_len) != 0)
        rc = fail(why, whylen, 1, "written by %.*s, not %.*s", na ? (int)a[0].key_len : 1,
                  na ? a[0].key : "?", nb ? (int)b[0].key_len : 1, nb ? b[0].key : "?");
    if (rc == 0)
        rc = diff_kind(a, na, b, nb, 1, why, whylen);
    if (rc == 0 && !flags_only)
        rc = diff_kind(a, na, b, nb, 0, why, whylen);
    /* Equal tokens but different text (spacing): still not the same job. */
    if (rc == 0 && !flags_only)
        rc = fail(why, whylen, 1, "the arguments differ");
    free(a);
    free(b);
    return rc;
}
