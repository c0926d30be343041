/* Unit tests of param_models: the model table, binding, linear and lorenz. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "param_grid.h"
#include "param_models.h"

static char err[512];

static void assert_contains(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("'%s' does not contain '%s'", text, needle);
}

static void assert_close(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("got %.17g, want %.17g (tolerance %g)", got, want, tol);
}

static void test_find_knows_models_and_lists_them_on_error(void **state)
{
    (void)state;
    const param_model *linear = param_model_find("linear", err, sizeof err);
    const param_model *lorenz = param_model_find("lorenz", err, sizeof err);
    assert_non_null(linear);
    assert_non_null(lorenz);
    assert_string_equal(linear->name, "linear");
    assert_string_equal(lorenz->name, "lorenz");
    assert_null(param_model_find("lorentz", err, sizeof err));
    assert_string_equal(err, "--model: unknown model 'lorentz' (available: linear, lorenz)");
    assert_int_equal(param_model_count(), 2);
    assert_ptr_equal(param_model_at(0), linear);
    assert_null(param_model_at(2));
}

static void test_bind_matches_names_and_fills_defaults(void **state)
{
    (void)state;
    const param_model *lorenz = param_model_find("lorenz", err, sizeof err);
    param_grid grid;
    param_grid_init(&grid);
    assert_int_equal(param_grid_add(&grid, "rho=20:30:3", err, sizeof err), PARAM_OK);
    assert_int_equal(param_grid_add(&grid, "sigma=9,11", err, sizeof err), PARAM_OK);
    int source[3];
    assert_int_equal(param_model_bind(lorenz, &grid, source, err, sizeof err), PARAM_OK);
    assert_int_equal(source[0], 1);  /* sigma */
    assert_int_equal(source[1], 0);  /* rho */
    assert_int_equal(source[2], -1); /* beta: default */
    double point[2], params[3];
    param_grid_point(&grid, 5, point); /* rho index 2, sigma index 1 */
    param_model_params(lorenz, source, point, params);
    assert_true(params[0] == 11.0);
    assert_true(params[1] == 30.0);
    assert_true(params[2] == 8.0 / 3.0);

    assert_int_equal(param_grid_add(&grid, "rh=1", err, sizeof err), PARAM_OK);
    assert_int_equal(param_model_bind(lorenz, &grid, source, err, sizeof err), PARAM_EINVAL);
    assert_contains(err, "model 'lorenz' has no parameter 'rh'");
    assert_contains(err, "sigma, rho, beta");
    param_grid_free(&grid);

    const param_model *linear = param_model_find("linear", err, sizeof err);
    param_grid_init(&grid);
    assert_int_equal(param_grid_add(&grid, "p1=1,2", err, sizeof err), PARAM_OK);
    assert_int_equal(param_model_bind(linear, &grid, source, err, sizeof err), PARAM_EINVAL);
    assert_contains(err, "'linear' needs --param p2");
    param_grid_free(&grid);
}

static void test_prepare_fills_defaults_and_checks_lengths(void **state)
{
    (void)state;
    const param_model *linear = param_model_find("linear", err, sizeof err);
    const param_model *lorenz = param_model_find("lorenz", err, sizeof err);
    param_model_options o;
    param_model_options_init(&o);
    assert_int_equal(param_model_prepare(linear, &o, err, sizeof err), PARAM_OK);
    assert_int_equal(o.length, 100);
    assert_int_equal(linear->record_length(&o), 100);
    char name[32];
    linear->field_name(&o, 7, name, sizeof name);
    assert_string_equal(name, "y_7");
    o.record = PARAM_RECORD_SUMMARY;
    assert_int_equal(linear->record_length(&o), 4);
    linear->field_name(&o, 3, name, sizeof name);
    assert_string_equal(name, "last");

    param_model_options_init(&o);
    assert_int_equal(param_model_prepare(lorenz, &o, err, sizeof err), PARAM_OK);
    assert_int_equal(o.length, 10000);
    assert_int_equal(lorenz->record_length(&o), 4);
    lorenz->field_name(&o, 3, name, sizeof name);
    assert_string_equal(name, "lyapunov");

    param_model_options_init(&o);
    o.length = 1000; /* not more than the burn-in */
    assert_int_equal(param_model_prepare(lorenz, &o, err, sizeof err), PARAM_EINVAL);
    assert_contains(err, "--length");
    param_model_options_init(&o);
    o.dt = -0.1;
    assert_int_equal(param_model_prepare(lorenz, &o, err, sizeof err), PARAM_EINVAL);
    assert_contains(err, "--dt");
    param_model_options_init(&o);
    o.length = -5;
    assert_int_equal(param_model_prepare(linear, &o, err, sizeof err), PARAM_EINVAL);
    assert_contains(err, "--length");
}

static void test_linear_vector_matches_closed_form(void **state)
{
    (void)state;
    const param_model *linear = param_model_find("linear", err, sizeof err);
    param_model_options o;
    param_model_options_init(&o);
    o.length = 37;
    assert_int_equal(param_model_prepare(linear, &o, err, sizeof err), PARAM_OK);
    const double params[2] = { 1.25, -3.0 };
    double record[37];
    assert_int_equal(linear->evaluate(params, &o, record, err, sizeof err), PARAM_OK);
    for (int ctr = 0; ctr < 37; ctr++)
        assert_true(record[ctr] == 1.25 * ctr - 9.0);
}

static void test_linear_summary_matches_closed_form(void **state)
{
    (void)state;
    const param_model *linear = param_model_find("linear", err, sizeof err);
    param_model_options o;
    param_model_options_init(&o);
    o.record = PARAM_RECORD_SUMMARY;
    const int64_t lengths[] = { 1, 2, 1000, 1000001 };
    const double p1s[] = { 0.5, -2.0, 3.75 };
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 3; b++) {
            o.length = lengths[a];
            assert_int_equal(param_model_prepare(linear, &o, err, sizeof err), PARAM_OK);
            const double p1 = p1s[b], p2 = 1.5;
            const double params[2] = { p1, p2 };
            double record[4];
            assert_int_equal(linear->evaluate(params, &o, record, err, sizeof err), PARAM_OK);
            double m = (double)lengths[a];
            double last = p1 * (m - 1) - p2 * p2;
            double first = -p2 * p2;
            /* mean of an arithmetic sequence = (first + last) / 2 */
            assert_close(record[0], (first + last) / 2, 1e-12 * fabs(last) + 1e-12);
            assert_true(record[1] == fmin(first, last));
            assert_true(record[2] == fmax(first, last));
            assert_true(record[3] == last);
        }
}

/* Lorenz-63 right-hand side written out for the reference step. */
static void reference_rhs(const double s[3], double d[3])
{
    const double sigma = 10.0, rho = 28.0, beta = 8.0 / 3.0;
    d[0] = sigma * (s[1] - s[0]);
    d[1] = s[0] * (rho - s[2]) - s[1];
    d[2] = s[0] * s[1] - beta * s[2];
}

static void test_one_rk4_step_matches_hand_computed_stages(void **state)
{
    (void)state;
    const double h = 0.01;
    const double s0[3] = { 1.0, 1.0, 1.0 };
    /* k1 at (1,1,1): (0, 26, 1 - 8/3) */
    double k1[3], k2[3], k3[3], k4[3], p[3];
    reference_rhs(s0, k1);
    assert_true(k1[0] == 0.0 && k1[1] == 26.0);
    assert_close(k1[2], 1.0 - 8.0 / 3.0, 1e-15);
    p[0] = 1.0 + h / 2 * k1[0];
    p[1] = 1.0 + h / 2 * k1[1];
    p[2] = 1.0 + h / 2 * k1[2];
    reference_rhs(p, k2);
    p[0] = 1.0 + h / 2 * k2[0];
    p[1] = 1.0 + h / 2 * k2[1];
    p[2] = 1.0 + h / 2 * k2[2];
    reference_rhs(p, k3);
    p[0] = 1.0 + h * k3[0];
    p[1] = 1.0 + h * k3[1];
    p[2] = 1.0 + h * k3[2];
    reference_rhs(p, k4);
    double want[3];
    for (int i = 0; i < 3; i++)
        want[i] = 1.0 + h / 6 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);

    double s[3] = { 1.0, 1.0, 1.0 };
    lorenz_rk4_step(s, 10.0, 28.0, 8.0 / 3.0, h);
    for (int i = 0; i < 3; i++)
        assert_close(s[i], want[i], 1e-14);
    /* And the step is O(h) away from the start in the direction of k1. */
    assert_close(s[1], 1.0 + 26.0 * h, 0.01);
}

static void evaluate_lorenz(double sigma, double rho, double beta, double record[4])
{
    const param_model *lorenz = param_model_find("lorenz", err, sizeof err);
    param_model_options o;
    param_model_options_init(&o);
    assert_int_equal(param_model_prepare(lorenz, &o, err, sizeof err), PARAM_OK);
    const double params[3] = { sigma, rho, beta };
    int rc = lorenz->evaluate(params, &o, record, err, sizeof err);
    if (rc != PARAM_OK)
        fail_msg("lorenz failed: %s", err);
}

static void test_lorenz_classic_parameters_are_chaotic(void **state)
{
    (void)state;
    double r[4];
    evaluate_lorenz(10.0, 28.0, 8.0 / 3.0, r);
    /* Largest Lyapunov exponent of the classic attractor is about 0.906. */
    if (!(r[3] >= 0.8 && r[3] <= 1.0))
        fail_msg("lyapunov %g not in [0.8, 1.0]", r[3]);
    /* Mean z on the attractor is about 23.5 (a bit below rho - 1 = 27). */
    if (!(r[0] > 21.0 && r[0] < 26.0))
        fail_msg("mean z %g", r[0]);
    assert_true(r[1] > r[0] && r[1] < 50.0);
    assert_true(r[2] > 0.0);
}

static void test_lorenz_stable_origin_has_negative_exponent(void **state)
{
    (void)state;
    double r[4];
    evaluate_lorenz(10.0, 0.5, 8.0 / 3.0, r);
    /* For rho < 1 the origin attracts; the exponent is the largest
     * eigenvalue of the Jacobian there: the x-y block [[-s, s], [rho, -1]]
     * gives (-(s+1) + sqrt((s-1)^2 + 4 s rho)) / 2, against -beta for z. */
    const double s = 10.0, rho = 0.5;
    const double lambda = (-(s + 1) + sqrt((s - 1) * (s - 1) + 4 * s * rho)) / 2;
    assert_true(r[3] < 0.0);
    assert_close(r[3], lambda, 0.005);
    assert_close(r[0], 0.0, 1e-3); /* the trajectory has collapsed onto the origin */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_knows_models_and_lists_them_on_error),
        cmocka_unit_test(test_bind_matches_names_and_fills_defaults),
        cmocka_unit_test(test_prepare_fills_defaults_and_checks_lengths),
        cmocka_unit_test(test_linear_vector_matches_closed_form),
        cmocka_unit_test(test_linear_summary_matches_closed_form),
        cmocka_unit_test(test_one_rk4_step_matches_hand_computed_stages),
        cmocka_unit_test(test_lorenz_classic_parameters_are_chaotic),
        cmocka_unit_test(test_lorenz_stable_origin_has_negative_exponent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
