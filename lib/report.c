#define _GNU_SOURCE
#include "report.h"
#include "fleetproto.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

void report_add_outcome(struct cJSON *j, const char *store_path, int gen_before,
			int gen_after)
{
	if (store_path)
		cJSON_AddStringToObject(j, "storePath", store_path);
	cJSON *gen = cJSON_AddObjectToObject(j, "generation");
	if (gen_before)
		cJSON_AddNumberToObject(gen, "before", gen_before);
	if (gen_after)
		cJSON_AddNumberToObject(gen, "after", gen_after);
}

const char *report_result(int status)
{
	switch (status) {
	case 0: return "ok";
	case NRR_EROLLEDBACK: return "rolled-back";
	case NRR_EDECLINED: return "declined";
	default: return "failed";
	}
}

/* The plan as JSON: per route, paths and bytes. */
static cJSON *plan_json(const struct deploy_plan *p)
{
	cJSON *j = cJSON_CreateObject();
	if (p->known) {
		cJSON_AddNumberToObject(j, "paths", (double)p->paths);
		cJSON_AddNumberToObject(j, "present", (double)p->present);
		cJSON *c = cJSON_AddObjectToObject(j, "fromCaches");
		cJSON_AddNumberToObject(c, "paths", (double)p->fetch);
		cJSON_AddNumberToObject(c, "bytes", (double)p->fetch_bytes);
		cJSON_AddBoolToObject(c, "used", p->auto_fetch);
		cJSON *push = cJSON_AddObjectToObject(j, "push");
		cJSON_AddNumberToObject(push, "paths", (double)p->push);
		cJSON_AddNumberToObject(push, "bytes", (double)p->push_bytes);
	}
	if (p->build_known) {
		cJSON *b = cJSON_AddObjectToObject(j, "build");
		cJSON_AddNumberToObject(b, "derivations", (double)p->build);
		cJSON_AddNumberToObject(b, "fetch", (double)p->fetch_here);
		cJSON_AddNumberToObject(b, "downloadMiB", p->download_mib);
	}
	return j;
}

void report_json(const struct deploy *d, const char *action, int status,
			const char *message, struct cJSON **diff)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "target", d->target.name ? d->target.name : "localhost");
	cJSON_AddStringToObject(j, "action", action);
	cJSON_AddStringToObject(j, "result", report_result(status));
	cJSON_AddNumberToObject(j, "status", status);
	if (status) {
		cJSON *err = cJSON_AddObjectToObject(j, "error");
		cJSON_AddStringToObject(err, "message", message ? message : "");
	}
	report_add_outcome(j, d->toplevel, d->gen_before, d->gen_after);
	cJSON_AddNumberToObject(j, "pathsCopied", (double)d->paths_copied);
	cJSON_AddNumberToObject(j, "bytesCopied", (double)d->bytes_copied);
	if (d->plan.known || d->plan.build_known)
		cJSON_AddItemToObject(j, "plan", plan_json(&d->plan));
	if (*diff) {
		cJSON_AddItemToObject(j, "diff", *diff);
		*diff = NULL;
	}
	char *text = cJSON_Print(j);
	puts(text);
	free(text);
	cJSON_Delete(j);
}

/* What failed, by exit status, for a fleet's report. */
static const char *step_of(int status)
{
	switch (status) {
	case NRR_ECONNECT: return "connect";
	case NRR_EEVAL: return "eval";
	case NRR_EBUILD: return "build";
	case NRR_ECOPY: return "copy";
	case NRR_ECHECK: return "check";
	case NRR_EACTIVATE: return "activate";
	case NRR_EROLLEDBACK: return "confirm";
	case NRR_ELOCKED: return "lock";
	case NRR_EDECLINED: return "ask";
	default: return status >= 128 ? "interrupted" : "deploy";
	}
}

void report_child_result(const struct deploy *d, int fd, int status,
			  const char *message)
{
	struct fleetproto_result r = {
		.status = status,
		.gen_before = d->gen_before,
		.gen_after = d->gen_after,
		.bytes = d->bytes_copied,
		.fetch_bytes = d->plan.fetch_bytes,
		.fetched = d->plan.auto_fetch,
	};
	if (status) {
		snprintf(r.step, sizeof(r.step), "%s", step_of(status));
		snprintf(r.message, sizeof(r.message), "%s", message ? message : "");
	}
	if (d->toplevel)
		snprintf(r.store_path, sizeof(r.store_path), "%s", d->toplevel);
	fleetproto_result(fd, &r);
}
