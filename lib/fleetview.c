#define _GNU_SOURCE
#include "fleetview.h"
#include "prompt.h"
#include "report.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

double fleet_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

double fleet_elapsed(const struct fleet_host *h)
{
	double a = (double)h->start.tv_sec + (double)h->start.tv_nsec / 1e9;
	double b = h->state == H_DONE
		? (double)h->end.tv_sec + (double)h->end.tv_nsec / 1e9 : fleet_now();
	return h->state == H_WAITING || h->state == H_SKIPPED ? 0 : b - a;
}

const char *fleet_result_of(const struct fleet_host *h)
{
	switch (h->state) {
	case H_WAITING:
		return "waiting";
	case H_SKIPPED:
		return "skipped";
	case H_RUNNING:
		return h->phase;
	case H_DONE:
		break;
	}
	if (h->status == 0)
		return "done";
	if (h->status == NRR_EROLLEDBACK)
		return "rolled back";
	if (h->status == NRR_EDECLINED)
		return "declined";
	return "failed";
}

void fleet_timestamp(char *buf, size_t size)
{
	time_t t = time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(buf, size, "%H:%M:%S", &tm);
}

/* Redraws the live lines on a terminal. */
void fleet_draw(struct fleet_host *hosts, size_t n, int redraw, int color,
		 size_t namew)
{
	struct strbuf sb = STRBUF_INIT;
	size_t done = 0, failed = 0, running = 0;

	if (redraw)
		strbuf_addf(&sb, "\033[%zuA", n + 1);
	for (size_t i = 0; i < n; i++) {
		const struct fleet_host *h = &hosts[i];
		const char *r = fleet_result_of(h);
		const char *col = "";
		if (color && h->state == H_DONE)
			col = h->status ? "\033[31m" : "\033[32m";
		strbuf_addf(&sb, "\r\033[K  %-*s %s%-12s%s %5.1fs", (int)namew, h->m.name,
			    col, r, color && *col ? "\033[0m" : "", fleet_elapsed(h));
		if (h->state == H_DONE && h->status)
			strbuf_addf(&sb, "  %s", h->step);
		strbuf_addch(&sb, '\n');
		if (h->state == H_DONE)
			h->status ? failed++ : done++;
		if (h->state == H_RUNNING)
			running++;
	}
	strbuf_addf(&sb, "\r\033[K%zu/%zu done, %zu failed, %zu running\n",
		    done, n, failed, running);
	if (write(2, sb.buf, sb.len) < 0) {
		/* no terminal any more: nothing to draw on */
	}
	strbuf_release(&sb);
}

void fleet_print_summary(const struct options *o, struct fleet_host *hosts,
			  size_t n, size_t namew)
{
	fprintf(stderr, "\n%-*s  %-8s %-12s %-11s %7s %10s %12s\n", (int)namew, "host",
		"action", "result", "generation", "time", "copied", "from caches");
	for (size_t i = 0; i < n; i++) {
		struct fleet_host *h = &hosts[i];
		char gen[32] = "-", copied[32] = "-", fetched[32] = "-";
		if (h->gen_after)
			snprintf(gen, sizeof(gen), "%d -> %d", h->gen_before, h->gen_after);
		if (h->state == H_DONE)
			snprintf(copied, sizeof(copied), "%.1f MiB",
				 (double)h->bytes / (1024.0 * 1024.0));
		if (h->state == H_DONE && o->substitutes == 2)
			snprintf(fetched, sizeof(fetched), "%.1f MiB",
				 (double)h->fetch_bytes / (1024.0 * 1024.0));
		fprintf(stderr, "%-*s  %-8s %-12s %-11s %6.1fs %10s %12s\n", (int)namew,
			h->m.name, o->keys_only ? "keys" : o->action, fleet_result_of(h), gen, fleet_elapsed(h), copied, fetched);
	}
	for (size_t i = 0; i < n; i++) {
		struct fleet_host *h = &hosts[i];
		if (h->state != H_DONE || !h->status || h->status == NRR_EDECLINED)
			continue;
		fprintf(stderr, "\n== %s (%s): %s\n", h->m.name, h->m.target,
			h->message[0] ? h->message : "failed");
		/* the last lines it said */
		size_t lines = 0, k = h->err.len;
		while (k > 0 && lines <= FLEET_TAIL_LINES) {
			k--;
			if (h->err.buf[k] == '\n' && k + 1 < h->err.len)
				lines++;
		}
		if (lines > FLEET_TAIL_LINES)
			k++;
		fwrite(h->err.buf + k, 1, h->err.len - k, stderr);
	}
}

/* [{"phase": NAME, "start": S, "end": E}, ...], seconds since t0. */
static cJSON *phases_json(const struct fleet_host *h, double t0)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; i < h->nr_phases; i++) {
		const struct fleet_phase *p = &h->phases[i];
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "phase", p->name);
		/* milliseconds are plenty, and keep the report short */
		cJSON_AddNumberToObject(j, "start", (double)(long long)((p->start - t0) * 1000) / 1000);
		cJSON_AddNumberToObject(j, "end", (double)(long long)((p->end - t0) * 1000) / 1000);
		cJSON_AddItemToArray(arr, j);
	}
	return arr;
}

void fleet_print_json(const struct options *o, struct fleet_host *hosts, size_t n,
		      double t0)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		struct fleet_host *h = &hosts[i];
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "name", h->m.name);
		cJSON_AddStringToObject(j, "target", h->m.target);
		cJSON_AddStringToObject(j, "action", o->keys_only ? "keys" : o->action);
		cJSON_AddStringToObject(j, "result",
					h->state == H_SKIPPED ? "skipped" :
					h->status == 0 ? "ok" :
					h->status == NRR_EROLLEDBACK ? "rolled-back" :
					h->status == NRR_EDECLINED ? "declined" : "failed");
		cJSON_AddNumberToObject(j, "status", h->state == H_DONE ? h->status : -1);
		if (h->status) {
			cJSON *err = cJSON_AddObjectToObject(j, "error");
			cJSON_AddStringToObject(err, "step", h->step);
			cJSON_AddStringToObject(err, "message", h->message);
		}
		report_add_outcome(j, h->path, h->gen_before, h->gen_after);
		cJSON_AddNumberToObject(j, "seconds", fleet_elapsed(h));
		cJSON_AddItemToObject(j, "phases", phases_json(h, t0));
		cJSON_AddNumberToObject(j, "bytesCopied", (double)h->bytes);
		if (o->substitutes == 2)
			cJSON_AddNumberToObject(j, "bytesFromCaches", (double)h->fetch_bytes);
		if (h->diff) {
			cJSON_AddItemToObject(j, "diff", h->diff);
			h->diff = NULL;
		}
		cJSON_AddItemToArray(arr, j);
	}
	char *text = cJSON_Print(arr);
	puts(text);
	free(text);
	cJSON_Delete(arr);
}

/* h enters phase name now (nothing if it is in it already): the phase
 * before it ends, for the --json report's timeline. */
void fleet_set_phase(struct fleet_host *h, const char *name)
{
	fleet_set_phase_at(h, name, 0);
}

void fleet_set_phase_at(struct fleet_host *h, const char *name, double at)
{
	/* the child's time, unless it is not one of this run's */
	double now = fleet_now();
	if (at > 0 && at <= now && (!h->nr_phases || at >= h->phases[h->nr_phases - 1].start))
		now = at;
	if (h->nr_phases && !strcmp(h->phases[h->nr_phases - 1].name, name))
		return;
	if (h->nr_phases && !h->phases[h->nr_phases - 1].end)
		h->phases[h->nr_phases - 1].end = now;
	h->phases = xrealloc(h->phases, (h->nr_phases + 1) * sizeof(*h->phases));
	struct fleet_phase *p = &h->phases[h->nr_phases++];
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->start = now;
	p->end = 0;
	snprintf(h->phase, sizeof(h->phase), "%s", name);
}

/* The last phase of h ends now. */
void fleet_end_phases(struct fleet_host *h)
{
	if (h->nr_phases && !h->phases[h->nr_phases - 1].end)
		h->phases[h->nr_phases - 1].end = fleet_now();
}

/* Every host still running waits at --ask's question: shows their diffs
 * and asks once for all of them. */
void fleet_ask(struct fleet_host *hosts, size_t n)
{
	struct strbuf q = STRBUF_INIT;
	size_t asking = 0;

	for (size_t i = 0; i < n; i++) {
		struct fleet_host *h = &hosts[i];
		if (!h->asking)
			continue;
		fprintf(stderr, "\n%s", h->diff_text.buf);
		strbuf_reset(&h->diff_text);
		/* the question names ten; the diffs above name them all */
		if (asking < 10)
			strbuf_addf(&q, "%s%s", asking ? ", " : "", h->m.name);
		asking++;
	}
	if (asking > 10)
		strbuf_addf(&q, " and %zu more", asking - 10);
	int yes = asking > 1
		? prompt_yes("\nActivate on %zu hosts (%s)? [y/N] ", asking, q.buf)
		: prompt_yes("\nActivate on %s? [y/N] ", q.buf);
	fleet_answer(hosts, n, yes);
	strbuf_release(&q);
}

/* Answers every host waiting before activation: yes or no. */
void fleet_answer(struct fleet_host *hosts, size_t n, int yes)
{
	for (size_t i = 0; i < n; i++) {
		struct fleet_host *h = &hosts[i];
		if (!h->asking)
			continue;
		if (write(h->answer_fd, yes ? "y\n" : "n\n", 2) < 0) {
			/* the child is gone: its result says why */
		}
		close(h->answer_fd);
		h->answer_fd = -1;
		h->asking = 0;
		fleet_set_phase(h, yes ? "activate" : "declined");
	}
}
