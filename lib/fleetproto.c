#define _GNU_SOURCE
#include "fleetproto.h"
#include "fiber.h"
#include "pump.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The kinds, as spelled on the pipe. */
static const char *const kind_names[] = {
	[FLEETPROTO_PHASE] = "phase",
	[FLEETPROTO_SAY] = "say",
	[FLEETPROTO_DIFF] = "diff",
	[FLEETPROTO_ASK] = "ask",
	[FLEETPROTO_RESULT] = "result",
	[FLEETPROTO_WARN] = "warn",
};

/* One line into lines: the kind, and its text if any. */
static void add_line(struct strbuf *lines, enum fleetproto_kind kind, const char *text, size_t len)
{
	strbuf_addstr(lines, kind_names[kind]);
	if (text) {
		strbuf_addch(lines, ' ');
		strbuf_add(lines, text, strnlen(text, len));
	}
	strbuf_addch(lines, '\n');
}

/* Whole lines to the fleet: into the running fiber's report (lib/fiber.h),
 * or in one write (dprintf would stat and seek the pipe for each line
 * first). */
static void send_lines(int fd, const struct strbuf *lines)
{
	struct strbuf *sink = fiber_report(fd);
	if (sink)
		strbuf_add(sink, lines->buf, lines->len);
	else
		fd_write_all(fd, lines->buf, lines->len);
}

static void put(int fd, enum fleetproto_kind kind, const char *text, size_t len)
{
	struct strbuf line = STRBUF_INIT;

	if (fd < 0)
		return;
	add_line(&line, kind, text, len);
	send_lines(fd, &line);
	strbuf_release(&line);
}

void fleetproto_phase(int fd, const char *phase)
{
	struct timespec t;
	char text[128];

	clock_gettime(CLOCK_MONOTONIC, &t);
	size_t len = strcspn(phase, " \n");
	int n = snprintf(text, sizeof(text), "%.*s %.6f", (int)(len < 32 ? len : 32), phase,
			 (double)t.tv_sec + (double)t.tv_nsec / 1e9);
	put(fd, FLEETPROTO_PHASE, text, (size_t)n);
}

char *fleetproto_phase_parse(const char *text, double *at)
{
	size_t n = strcspn(text, " ");
	char *end;

	*at = 0;
	if (text[n] == ' ') {
		double t = strtod(text + n + 1, &end);
		if (end != text + n + 1 && !*end && t > 0)
			*at = t;
	}
	return strndup(text, n);
}

void fleetproto_say(int fd, const char *text)
{
	struct strbuf lines = STRBUF_INIT;

	if (fd < 0)
		return;
	/* all of them in one write: a diff is a dozen lines */
	for (const char *p = text; *p;) {
		size_t len = strcspn(p, "\n");
		add_line(&lines, FLEETPROTO_SAY, p, len);
		p += len + (p[len] ? 1 : 0);
	}
	send_lines(fd, &lines);
	strbuf_release(&lines);
}

static void put_json(int fd, enum fleetproto_kind kind, const cJSON *j)
{
	char *text = cJSON_PrintUnformatted(j);	/* one line: strings escape \n */
	if (text)
		put(fd, kind, text, strlen(text));
	free(text);
}

void fleetproto_diff(int fd, const cJSON *diff)
{
	put_json(fd, FLEETPROTO_DIFF, diff);
}

void fleetproto_warn(int fd, const char *text)
{
	put(fd, FLEETPROTO_WARN, text, strcspn(text, "\n"));
}

void fleetproto_ask(int fd)
{
	put(fd, FLEETPROTO_ASK, NULL, 0);
}

void fleetproto_result(int fd, const struct fleetproto_result *r)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "status", r->status);
	if (r->status) {
		cJSON_AddStringToObject(j, "step", r->step);
		cJSON_AddStringToObject(j, "message", r->message);
	}
	if (r->store_path[0])
		cJSON_AddStringToObject(j, "storePath", r->store_path);
	cJSON_AddNumberToObject(j, "genBefore", r->gen_before);
	cJSON_AddNumberToObject(j, "genAfter", r->gen_after);
	cJSON_AddNumberToObject(j, "bytes", (double)r->bytes);
	if (r->fetched)
		cJSON_AddNumberToObject(j, "fetchBytes", (double)r->fetch_bytes);
	put_json(fd, FLEETPROTO_RESULT, j);
	cJSON_Delete(j);
}

static void parse_result(const char *text, struct fleetproto_result *r)
{
	cJSON *j = cJSON_Parse(text), *v;

	memset(r, 0, sizeof(*r));
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "status")) && cJSON_IsNumber(v))
		r->status = v->valueint;
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "genBefore")) && cJSON_IsNumber(v))
		r->gen_before = v->valueint;
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "genAfter")) && cJSON_IsNumber(v))
		r->gen_after = v->valueint;
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "bytes")) && cJSON_IsNumber(v) &&
	    v->valuedouble >= 0)
		r->bytes = (unsigned long long)v->valuedouble;
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "fetchBytes")) && cJSON_IsNumber(v) &&
	    v->valuedouble >= 0) {
		r->fetch_bytes = (unsigned long long)v->valuedouble;
		r->fetched = 1;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "step")) && cJSON_IsString(v))
		snprintf(r->step, sizeof(r->step), "%s", v->valuestring);
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "message")) && cJSON_IsString(v))
		snprintf(r->message, sizeof(r->message), "%s", v->valuestring);
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "storePath")) && cJSON_IsString(v))
		snprintf(r->store_path, sizeof(r->store_path), "%s", v->valuestring);
	cJSON_Delete(j);
}

void fleetproto_parse(const char *line, struct fleetproto_msg *m)
{
	memset(m, 0, sizeof(*m));
	for (int k = FLEETPROTO_PHASE; k <= FLEETPROTO_WARN; k++) {
		size_t len = strlen(kind_names[k]);
		if (strncmp(line, kind_names[k], len) || (line[len] && line[len] != ' '))
			continue;
		m->kind = (enum fleetproto_kind)k;
		m->text = line[len] ? line + len + 1 : "";
		break;
	}
	if (m->kind == FLEETPROTO_DIFF)
		m->diff = cJSON_Parse(m->text);
	else if (m->kind == FLEETPROTO_RESULT)
		parse_result(m->text, &m->result);
}
