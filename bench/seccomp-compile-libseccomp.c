/* Times libseccomp compiling a profile the way runc does (init, extra
 * architectures, binary-tree optimisation for long rule sets, one rule per
 * syscall name, then BPF generation), for bench/seccomp-compile.sh.
 * Input: the line format printed by `seccomp_compile PROFILE --flatten`.
 * Output: "<mean microseconds per compile> <BPF instructions>". */
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_RULES 4096

struct rule {
	uint32_t ret;
	char name[64];
	unsigned int count;
	struct scmp_arg_cmp args[6];
};

static uint32_t default_ret;
static uint32_t arches[32];
static int n_arches;
static struct rule rules[MAX_RULES];
static int n_rules;

static void load(const char *path)
{
	FILE *f = fopen(path, "r");
	char kind[16];
	if (!f) {
		perror(path);
		exit(1);
	}
	while (fscanf(f, "%15s", kind) == 1) {
		if (!strcmp(kind, "default")) {
			if (fscanf(f, "%u", &default_ret) != 1)
				goto bad;
		} else if (!strcmp(kind, "arch")) {
			if (n_arches == 32 || fscanf(f, "%u", &arches[n_arches++]) != 1)
				goto bad;
		} else if (!strcmp(kind, "rule")) {
			struct rule *r = &rules[n_rules];
			if (n_rules == MAX_RULES ||
			    fscanf(f, "%u %63s %u", &r->ret, r->name, &r->count) != 3 || r->count > 6)
				goto bad;
			for (unsigned int i = 0; i < r->count; i++) {
				unsigned int arg, op;
				unsigned long long a, b;
				if (fscanf(f, "%u %u %llu %llu", &arg, &op, &a, &b) != 4)
					goto bad;
				r->args[i] = (struct scmp_arg_cmp){arg, op, a, b};
			}
			n_rules++;
		} else {
			goto bad;
		}
	}
	fclose(f);
	return;
bad:
	fprintf(stderr, "%s: malformed input near '%s'\n", path, kind);
	exit(1);
}

/* One compile, BPF written to fd. */
static void compile(int fd)
{
	scmp_filter_ctx ctx = seccomp_init(default_ret);
	if (!ctx) {
		fprintf(stderr, "seccomp_init failed\n");
		exit(1);
	}
	for (int i = 0; i < n_arches; i++) {
		int rc = seccomp_arch_add(ctx, arches[i]);
		if (rc && rc != -EEXIST) {
			fprintf(stderr, "seccomp_arch_add: %s\n", strerror(-rc));
			exit(1);
		}
	}
	if (n_rules > 32)
		seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (int i = 0; i < n_rules; i++) {
		int nr = seccomp_syscall_resolve_name(rules[i].name);
		if (nr == __NR_SCMP_ERROR)
			continue; /* unknown to libseccomp: runc skips it */
		int rc = seccomp_rule_add_array(ctx, rules[i].ret, nr, rules[i].count, rules[i].args);
		if (rc) {
			fprintf(stderr, "rule %s: %s\n", rules[i].name, strerror(-rc));
			exit(1);
		}
	}
	if (seccomp_export_bpf(ctx, fd)) {
		fprintf(stderr, "seccomp_export_bpf failed\n");
		exit(1);
	}
	seccomp_release(ctx);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s RULES_FILE ITERATIONS\n", argv[0]);
		return 2;
	}
	load(argv[1]);
	int iterations = atoi(argv[2]);
	if (iterations <= 0) {
		fprintf(stderr, "ITERATIONS must be positive\n");
		return 2;
	}

	/* Size the program once through a temporary file. */
	char tmpl[] = "/tmp/seccomp-bench-XXXXXX";
	int fd = mkstemp(tmpl);
	if (fd < 0) {
		perror("mkstemp");
		return 1;
	}
	unlink(tmpl);
	compile(fd);
	struct stat st;
	fstat(fd, &st);
	close(fd);

	int null_fd = open("/dev/null", O_WRONLY);
	struct timespec start, end;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (int i = 0; i < iterations; i++)
		compile(null_fd);
	clock_gettime(CLOCK_MONOTONIC, &end);
	double us = ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / 1e3;
	printf("%.1f %lld\n", us / iterations, (long long)st.st_size / 8);
	return 0;
}
