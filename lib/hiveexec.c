/*
 * hiveexec: see hiveexec.h.
 */
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "hiveexec.h"
#include "ssh.h"
#include "strbuf.h"

/* The node's own ssh context when it has a port or ssh options: the
 * words ssh gets after NIX_SSHOPTS's, for ssh -G as for every command. */
static int node_ctx(const struct hive_node *node, int verbose, struct ssh_ctx **out,
		    struct strvec *warnings, struct nrr_err *e)
{
	struct ssh_ctx *ctx;

	*out = NULL;
	if (!node->target_port && !node->ssh_options.nr)
		return 0;
	ctx = xcalloc(1, sizeof(*ctx));
	if (ssh_ctx_init(ctx, warnings, e)) {
		ssh_ctx_release(ctx);
		free(ctx);
		return e->status;
	}
	ctx->trace = verbose;
	if (node->target_port) {
		strvec_push(&ctx->opts, "-p");
		strvec_pushf(&ctx->opts, "%d", node->target_port);
	}
	strvec_pushvec(&ctx->opts, &node->ssh_options);
	*out = ctx;
	return 0;
}

int hive_exec(const struct hive *h, const size_t *sel, size_t n,
	      const char *const *cmd, int parallel, int verbose,
	      struct strvec *warnings, struct nrr_err *e)
{
	struct ssh_ctx ctx;
	struct ssh_host *hosts;
	struct exec_target *t;
	size_t i;
	int st;

	if (!cmd || !cmd[0])
		return nrr_fail(e, NRR_EUSAGE, "exec: no command given");
	for (i = 0; i < n; i++)
		if (!h->nodes[sel[i]].target_host)
			return nrr_fail(e, NRR_EUSAGE,
					"node '%s' has no deployment.targetHost: exec cannot reach it",
					h->nodes[sel[i]].name);
	st = ssh_ctx_init(&ctx, warnings, e);
	if (st)
		return st;
	ctx.trace = verbose;
	hosts = xcalloc(n ? n : 1, sizeof(*hosts));
	t = xcalloc(n ? n : 1, sizeof(*t));
	for (i = 0; !st && i < n; i++) {
		const struct hive_node *node = &h->nodes[sel[i]];
		char *spec = node->target_user
			? xstrfmt("%s@%s", node->target_user, node->target_host)
			: xstrdup(node->target_host);

		t[i].name = node->name;
		t[i].ssh = &hosts[i];
		if (node->target_user && strcmp(node->target_user, "root"))
			t[i].prefix = (const char *const *)node->escalation.v;
		st = node_ctx(node, verbose, &t[i].ctx, warnings, e);
		if (!st)
			st = ssh_host_resolve(t[i].ctx ? t[i].ctx : &ctx, spec, &hosts[i], e);
		free(spec);
		if (st) {
			char *why = xstrdup(e->msg);	/* nrr_fail overwrites it */
			nrr_fail(e, st, "node '%s': %s", node->name, why);
			free(why);
		}
	}
	if (!st)
		st = exec_run(&ctx, t, n, cmd, parallel, 1, 2, e);
	for (size_t k = 0; k < i; k++) {
		ssh_host_release(t[k].ctx ? t[k].ctx : &ctx, &hosts[k]);
		if (t[k].ctx) {
			ssh_ctx_release(t[k].ctx);
			free(t[k].ctx);
		}
	}
	ssh_ctx_release(&ctx);
	free(hosts);
	free(t);
	return st;
}
