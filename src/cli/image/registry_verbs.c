/* hull image pull | push | login | logout: the registry verbs, thin front
 * ends over registry.h. Progress goes to stderr (bars on a terminal, one
 * line otherwise, nothing with -q); stdout carries only the manifest
 * digest, for scripts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "hull.h"
#include "image/registry.h"
#include "image_cli.h"

/* A pull's whole time limit unless --timeout says otherwise: long enough for
 * gigabytes over a slow link, and a pull it cuts resumes where it stopped. */
#define PULL_TIMEOUT_DEFAULT_S 3600

static void registry_opts(struct img_cli *c, struct image_registry_opts *o)
{
    *o = (struct image_registry_opts){
        .platform = c->platform,
        .tls_insecure = !c->tls_verify,
        .cert_dir = c->cert_dir,
        .auth_file = c->auth_file,
        .creds = c->creds,
    };
}

static int simple_opts(struct img_cli *c, int argc, char **argv, void (*help)(void))
{
    static const struct option opts[] = {{0}};
    int opt;
    while ((opt = img_getopt(c, argc, argv, "", opts)) != -1) {
        if (opt == 'h') {
            help();
            return -1;
        }
        return 1;
    }
    return 0;
}

/* Pull and push show the same things: progress on stderr, a one-line
 * summary once it is done, and only the manifest digest on stdout. */
static int transfer(struct img_cli *c, struct image_store *s, const char *text, const char *dest,
                    bool push, long pull_timeout_s)
{
    struct image_registry_opts o;
    registry_opts(c, &o);
    o.pull_timeout_s = pull_timeout_s;
    struct image_progress_view *view = image_progress_view_new(stderr, c->quiet);
    o.progress = image_progress_view_cb;
    o.progress_arg = view;
    hull_error err = NULL;
    cleanup_free char *digest = NULL;
    int r = push ? image_push(s, text, dest, &o, &digest, &err)
                 : image_pull(s, text, &o, &digest, &err);
    const char *shown = dest ? dest : text;
    char summary[600];
    snprintf(summary, sizeof(summary), "%s %s", push ? "pushed" : "pulled", shown);
    image_progress_view_finish(view, r == 0 ? summary : NULL);
    if (r < 0)
        return img_fail(c, &err, "%s", shown);
    printf("%s\n", digest);
    return 0;
}

static void help_pull(void)
{
    printf("usage: hull image pull [options] IMAGE\n"
           "\n"
           "Fetch IMAGE ([REGISTRY/]REPO[:TAG][@DIGEST]; docker.io when no registry is\n"
           "named) into the store: the manifest for --platform (default: the host's),\n"
           "its config and layers, each checked against its digest and unpacked once.\n"
           "A pull that was interrupted resumes. Prints the manifest digest.\n"
           "\n"
           "  --platform OS/ARCH   which image of a multi-platform index\n"
           "  --tls-verify=false   no certificate check; plain http allowed\n"
           "  --cert-dir DIR       extra CA certificates (*.crt)\n"
           "  --authfile FILE      credentials file (see 'hull image login')\n"
           "  --creds USER:PASS    credentials for this pull only\n"
           "  --timeout DURATION   give up after this long in all (30s, 10m, 2h;\n"
           "                       default 1h; 0: never); the next pull resumes\n"
           "  -q, --quiet          no progress, only the digest\n");
}

/* pull's own options: --timeout. Returns 0, or -1 after --help, or 1 after
 * a usage error. */
static int pull_opts(struct img_cli *c, int argc, char **argv, long *timeout_s)
{
    enum { OPT_TIMEOUT = 2000 };
    static const struct option opts[] = {{"timeout", required_argument, NULL, OPT_TIMEOUT}, {0}};
    *timeout_s = PULL_TIMEOUT_DEFAULT_S;
    int opt;
    while ((opt = img_getopt(c, argc, argv, "", opts)) != -1) {
        if (opt == 'h') {
            help_pull();
            return -1;
        }
        if (opt != OPT_TIMEOUT)
            return 1;
        uint64_t ms;
        /* Whole seconds: a limit under one would cut every pull. */
        if (hull_parse_duration_ms(optarg, &ms) < 0 || ms > 7ull * 86400 * 1000 ||
            (ms > 0 && ms < 1000)) {
            img_usage(c, "--timeout: '%s' is not a duration from 1s to 7 days, or 0", optarg);
            return 1;
        }
        *timeout_s = (long)((ms + 999) / 1000);
    }
    return 0;
}

int img_pull(struct img_cli *c, int argc, char **argv)
{
    long timeout_s;
    int r = pull_opts(c, argc, argv, &timeout_s);
    if (r != 0)
        return r < 0 ? 0 : 1;
    if (img_need_args(c, argc, argv, 1, "IMAGE") != 0)
        return 1;
    const char *text = argv[optind];
    hull_error err = NULL;
    cleanup_image_ref struct image_ref ref = {0};
    if (image_ref_parse(text, &ref, &err) < 0)
        return img_fail(c, &err, "%s", text);
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    if (img_open_store(c, true, &s, &err) < 0)
        return img_fail(c, &err, "%s", text);
    return transfer(c, &s, text, NULL, false, timeout_s);
}

static void help_push(void)
{
    printf("usage: hull image push [options] IMAGE [DESTINATION]\n"
           "\n"
           "Send IMAGE from the store to its registry, or to DESTINATION\n"
           "([REGISTRY/]REPO[:TAG]). Blobs the registry has are not sent again.\n"
           "Prints the manifest digest.\n"
           "\n"
           "  --tls-verify=false   no certificate check; plain http allowed\n"
           "  --cert-dir DIR       extra CA certificates (*.crt)\n"
           "  --authfile FILE      credentials file (see 'hull image login')\n"
           "  --creds USER:PASS    credentials for this push only\n"
           "  -q, --quiet          no progress, only the digest\n");
}

int img_push(struct img_cli *c, int argc, char **argv)
{
    int r = simple_opts(c, argc, argv, help_push);
    if (r != 0)
        return r < 0 ? 0 : 1;
    if (argc - optind == 2 ? 0 : img_need_args(c, argc, argv, 1, "IMAGE") != 0)
        return 1;
    const char *text = argv[optind];
    const char *dest = argc - optind == 2 ? argv[optind + 1] : NULL;
    hull_error err = NULL;
    cleanup_image_ref struct image_ref ref = {0};
    if (dest != NULL && image_ref_parse(dest, &ref, &err) < 0)
        return img_fail(c, &err, "%s", dest);
    cleanup_image_store struct image_store s = {.rootfd = -1, .lockfd = -1};
    if (img_open_store(c, false, &s, &err) < 0)
        return img_fail(c, &err, "%s", text);
    return transfer(c, &s, text, dest, true, 0);
}

/* A password from a terminal, not echoed; NULL at EOF. */
static char *prompt_password(const char *prompt)
{
    FILE *tty = fopen("/dev/tty", "r+e");
    if (tty == NULL)
        return NULL;
    struct termios old, quiet;
    bool restore = tcgetattr(fileno(tty), &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
    }
    fputs(prompt, tty);
    fflush(tty);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, tty);
    if (restore)
        tcsetattr(fileno(tty), TCSAFLUSH, &old);
    fputc('\n', tty);
    fclose(tty);
    if (n < 0) {
        free(line);
        return NULL;
    }
    line[strcspn(line, "\r\n")] = '\0';
    return line;
}

static char *read_stdin_password(void)
{
    char *line = NULL;
    size_t cap = 0;
    if (getline(&line, &cap, stdin) < 0) {
        free(line);
        return strdup("");
    }
    line[strcspn(line, "\r\n")] = '\0';
    return line;
}

static void help_login(void)
{
    printf("usage: hull image login [options] [-u USER] [--password-stdin] REGISTRY\n"
           "\n"
           "Check USER's password with REGISTRY and store the credentials in the\n"
           "auth file (--authfile, else $REGISTRY_AUTH_FILE, else\n"
           "$XDG_RUNTIME_DIR/containers/auth.json, else ~/.docker/config.json).\n"
           "The password comes from standard input (--password-stdin) or a prompt\n"
           "on the terminal; -p PASSWORD works but shows it to every user of ps.\n"
           "\n"
           "  -u, --username USER    the user (prompted for when absent)\n"
           "  --password-stdin       read the password from standard input\n"
           "  -p, --password PASS    the password on the command line (discouraged)\n"
           "  --authfile FILE        where to store the credentials\n"
           "  --tls-verify=false     no certificate check; plain http allowed\n"
           "  --cert-dir DIR         extra CA certificates (*.crt)\n");
}

int img_login(struct img_cli *c, int argc, char **argv)
{
    enum { OPT_STDIN = 2000 };
    static const struct option opts[] = {
        {"username", required_argument, NULL, 'u'},
        {"password", required_argument, NULL, 'p'},
        {"password-stdin", no_argument, NULL, OPT_STDIN},
        {0},
    };
    const char *user = NULL, *pass_arg = NULL;
    bool from_stdin = false;
    int opt;
    while ((opt = img_getopt(c, argc, argv, "u:p:", opts)) != -1) {
        if (opt == 'h') {
            help_login();
            return 0;
        } else if (opt == 'u') {
            user = optarg;
        } else if (opt == 'p') {
            pass_arg = optarg;
        } else if (opt == OPT_STDIN) {
            from_stdin = true;
        } else {
            return 1;
        }
    }
    if (img_need_args(c, argc, argv, 1, "REGISTRY") != 0)
        return 1;
    const char *registry = argv[optind];
    if (pass_arg != NULL && from_stdin)
        return img_usage(c, "--password and --password-stdin exclude each other");
    cleanup_free char *user_buf = NULL, *pass = NULL;
    if (user == NULL) {
        if (!isatty(STDIN_FILENO) || from_stdin)
            return img_usage(c, "give -u USER (no terminal to ask on)");
        fputs("Username: ", stderr);
        size_t cap = 0;
        if (getline(&user_buf, &cap, stdin) < 0)
            return img_usage(c, "no username given");
        user_buf[strcspn(user_buf, "\r\n")] = '\0';
        user = user_buf;
    }
    if (pass_arg != NULL) {
        fputs("hull: image login: warning: a password in the arguments is visible to every "
              "user (use --password-stdin)\n",
              stderr);
        pass = strdup(pass_arg);
    } else if (from_stdin) {
        pass = read_stdin_password();
    } else if (isatty(STDIN_FILENO)) {
        pass = prompt_password("Password: ");
    } else {
        return img_usage(c, "no password: use --password-stdin or a terminal");
    }
    hull_error err = NULL;
    if (pass == NULL)
        return img_usage(c, "no password given");
    struct image_registry_opts o;
    registry_opts(c, &o);
    int r = image_login(registry, user, pass, &o, &err);
    explicit_bzero(pass, strlen(pass));
    if (r < 0)
        return img_fail(c, &err, "%s", registry);
    if (!c->quiet)
        printf("Login Succeeded\n");
    return 0;
}

static void help_logout(void)
{
    printf("usage: hull image logout [--authfile FILE] REGISTRY\n"
           "\n"
           "Remove REGISTRY's credentials from the auth file.\n"
           "\n"
           "  --authfile FILE   the credentials file (default as for login)\n");
}

int img_logout(struct img_cli *c, int argc, char **argv)
{
    int r = simple_opts(c, argc, argv, help_logout);
    if (r != 0)
        return r < 0 ? 0 : 1;
    if (img_need_args(c, argc, argv, 1, "REGISTRY") != 0)
        return 1;
    const char *registry = argv[optind];
    hull_error err = NULL;
    struct image_registry_opts o;
    registry_opts(c, &o);
    if (image_logout(registry, &o, &err) < 0)
        return img_fail(c, &err, "%s", registry);
    if (!c->quiet)
        printf("Removed login credentials for %s\n", registry);
    return 0;
}
