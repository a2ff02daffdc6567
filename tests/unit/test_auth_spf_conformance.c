/* test_auth_spf_conformance - the OpenSPF RFC 7208 test suite (release 2014.04), every case.
 *
 * tests/conformance/spf/rfc7208-tests.json (made from the suite's YAML by yaml2json.py) gives
 * each scenario's zone and cases; the zone is served by the in-memory DNS of
 * test_auth_spf_util.h, so names under any TLD work, and timeouts are instant. Each case runs
 * twice: with answers from an event loop (as the resolver gives them) and with answers inside
 * the lookup calls. It passes when the result is one the suite allows and, where the suite
 * gives an explanation, the explanation is that text ("DEFAULT": ours, SPF_DEFAULT_EXPLANATION).
 *
 * One cmocka test per scenario; a failing case prints its name, what it got and why. */
#include "test_auth_spf_util.h"

#ifndef DROVER_SOURCE_DIR
#error "DROVER_SOURCE_DIR (the repository) must be defined: the suite is read from it"
#endif

#define SUITE DROVER_SOURCE_DIR "/tests/conformance/spf/rfc7208-tests.json"

static json_t *suite;
static unsigned cases_run, cases_passed;
static bool verbose; /* SPF_CONFORMANCE_VERBOSE=1: every case's outcome and reason */

static bool
result_allowed(const json_t *results, enum spf_result r)
{
	size_t i;
	const json_t *v;

	json_array_foreach(results, i, v)
	{
		if (strcmp(json_string_value(v), spf_result_name(r)) == 0)
			return true;
	}
	return false;
}

/* One case in one mode; true if it passes (and prints why not). */
static bool
run_case(const json_t *zone, const json_t *t, bool async)
{
	struct event_base *base = async ? event_base_new() : NULL;
	struct memdns *m = memdns_new(base, NULL, (json_t *)zone);
	const char *name = json_string_value(json_object_get(t, "name"));
	const json_t *want_exp = json_object_get(t, "explanation");
	size_t len;
	char *mailfrom = memdns_octets(json_object_get(t, "mailfrom"), &len);
	char *helo = memdns_octets(json_object_get(t, "helo"), &len);
	struct spf_request req =
	    spf_req(SPF_SCOPE_MFROM, json_string_value(json_object_get(t, "host")), mailfrom, helo);
	struct outcome *out = xcalloc(1, sizeof(*out));
	bool ok;

	spf_run(m, &req, out);
	ok = result_allowed(json_object_get(t, "result"), out->result);
	if (ok && want_exp != NULL) {
		const char *w = json_string_value(want_exp);

		if (strcmp(w, "DEFAULT") == 0)
			ok = out->default_explanation;
		else
			ok = out->has_explanation && !out->default_explanation &&
			     strcmp(out->explanation, w) == 0;
	}
	if (!ok || (verbose && async)) {
		char *want = json_dumps(json_object_get(t, "result"), JSON_COMPACT);

		print_message("%s %s (%s): got %s, want %s; explanation \"%s\"%s, want \"%s\"\n"
		              "     reason: %s\n",
		              ok ? "ok  " : "FAIL", name, async ? "async" : "sync",
		              spf_result_name(out->result), want, out->explanation,
		              out->default_explanation ? " (default)" : "",
		              want_exp != NULL ? json_string_value(want_exp) : "-", out->reason);
		free(want);
	}
	free(out);
	free(mailfrom);
	free(helo);
	memdns_free(m);
	if (base != NULL)
		event_base_free(base);
	return ok;
}

static void
test_scenario(void **state)
{
	const json_t *sc = *state;
	const json_t *zone = json_object_get(sc, "zone"), *t;
	unsigned failed = 0;
	size_t i;

	json_array_foreach(json_object_get(sc, "tests"), i, t)
	{
		bool ok = run_case(zone, t, true);

		ok = run_case(zone, t, false) && ok;
		cases_run++;
		cases_passed += ok;
		failed += !ok;
	}
	if (failed > 0)
		fail_msg("%u case(s) of \"%s\" failed", failed,
		         json_string_value(json_object_get(sc, "description")));
}

int
main(void)
{
	json_error_t jerr;
	struct CMUnitTest *tests;
	size_t n, i, total = 0;
	json_t *sc;
	int rc;

	verbose = getenv("SPF_CONFORMANCE_VERBOSE") != NULL;
	/* JSON_ALLOW_NUL: the suite has records with NUL octets in them ("a-null"). */
	suite = json_load_file(SUITE, JSON_ALLOW_NUL, &jerr);
	if (suite == NULL) {
		fprintf(stderr, "%s:%d: %s\n", SUITE, jerr.line, jerr.text);
		return 1;
	}
	n = json_array_size(json_object_get(suite, "scenarios"));
	tests = xcalloc(n, sizeof(*tests));
	json_array_foreach(json_object_get(suite, "scenarios"), i, sc)
	{
		tests[i] = (struct CMUnitTest){
		    .name = json_string_value(json_object_get(sc, "description")),
		    .test_func = test_scenario,
		    .initial_state = sc,
		};
		total += json_array_size(json_object_get(sc, "tests"));
	}
	rc = _cmocka_run_group_tests("spf_conformance", tests, n, NULL, NULL);
	printf("OpenSPF RFC 7208 suite: %u of %zu cases pass (each in both lookup modes)\n",
	       cases_passed, total);
	if (cases_run != total || cases_passed != total)
		rc = rc != 0 ? rc : 1;
	free(tests);
	json_decref(suite);
	return rc;
}
