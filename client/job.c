/* job.c: the `job` command on the PATH, compiled so that the commands people and scripts run most
 * start as fast as Slurm's C commands (issue 12): the Python `job` takes 50-70 ms as a process before it
 * sends anything, most of it the interpreter's start.
 *
 * It does itself, byte for byte as the Python `job` (src/hpcpack/cli) does, only:
 *   job view <jobID>                              lookup_jobs, get_tasks
 *   job cancel <jobID> [/force|/graceful] [/message:<text>]
 *                                                 cancel_jobs, then waits as backends/stopping.py does
 *   job submit [/numcores:<n>] <command> [<parameters>...]
 *                                                 new_job (the job and its one task), submit_jobs
 *   job list                                      get_jobs (own Queued and Running jobs), the plain table
 * on the local head node's socket found as config.py finds it. Anything else (other commands or options,
 * /scheduler:, a remote or several head nodes, a head node that is down or of another version, text it
 * cannot lay out as Python does, a reply it does not expect) it hands over to the Python command, `job-py`
 * beside it, by execv with the same words. A hand-over happens only before anything is changed, so
 * nothing is done twice; the Python command stays the reference and the only one with help and errors
 * of usage.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef HPCPACK_VERSION
#error "build with -DHPCPACK_VERSION=\"x.y.z\" (the Makefile does): the head node checks it on connect"
#endif
#ifndef JOB_PY
#define JOB_PY "/opt/hpcpack/venv/bin/job-py"
#endif

#ifndef PROTOCOL_VERSION
#error "build with -DPROTOCOL_VERSION=n (the Makefile reads it from wire/protocol.py)"
#endif
#define MAX_IDS 10000            /* protocol.MAX_IDS: get_jobs pages */
#define MAX_FRAME (64u << 20)    /* protocol.MAX_FRAME */
#define MAX_MESSAGE 128          /* model/stop.py: a cancel message */
#define WAIT_SLICE 0.25          /* backends/stopping.py SLICE */
#define EXIT_BROKEN_PIPE 141
#define EXIT_INTERRUPTED 130

static char **words;             /* our argv, for the hand-over */
static int sock = -1;
static char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static bool changed;             /* a change was sent: from here on, never hand over */
static const char *change_op;    /* which (for the message when its reply is lost) */

/* -- the hand-over ------------------------------------------------------------------------------- */

static _Noreturn void hand_over(void)
{
    if (changed) {  /* too late to hand over: that would do it twice */
        fputs("job: the head node answered in a way this command cannot show; 'job-py' shows it\n", stderr);
        exit(1);
    }
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 8);
    if (n > 0) {
        path[n] = 0;
        char *slash = strrchr(path, '/');
        strcpy(slash + 1, "job-py");
    }
    if (n <= 0 || access(path, X_OK) != 0)
        snprintf(path, sizeof path, "%s", JOB_PY);
    words[0] = path;
    execv(path, words);
    fprintf(stderr, "job: cannot run the Python job command %s: %s\n", path, strerror(errno));
    exit(127);
}

/* After a change was sent a hand-over would do it twice: say what went wrong instead, as Python would. */
static _Noreturn void fail(const char *why)
{
    if (!changed)
        hand_over();
    fprintf(stderr, "job: Lost the connection to the head node: %s. The request (%s) was sent before the connection "
            "was lost, and the head node may have applied it: once it is back, look at the job (job view) before you "
            "send it again.\n", why, change_op);
    exit(1);
}

/* -- text ---------------------------------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

static void put(Buf *b, const char *text, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data)
            abort();
    }
    memcpy(b->data + b->len, text, n);
    b->len += n;
    b->data[b->len] = 0;
}

static void putf(Buf *b, const char *format, ...)
{
    char small[512];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(small, sizeof small, format, args);
    va_end(args);
    if (n < 0 || (size_t)n >= sizeof small)
        hand_over();  /* only short texts come here */
    put(b, small, (size_t)n);
}

static void put_visible(Buf *b, const char *text);

/* A number Python would have sent as an int: whole and within +-1e15 (checked before any cast: casting a
 * double outside long long's range is undefined). */
static bool whole(double value)
{
    return value < 1e15 && value > -1e15 && value == (double)(long long)value;
}

static bool printable_ascii(const char *text)
{
    for (; *text; text++)
        if (*text < 0x20 || *text > 0x7e)
            return false;
    return true;
}

/* Python's int() of a job ID as the CLI parses it, narrowed to plain digits up to the wire's largest ID
   (operations.MAX_ID); 0 for anything else, which job-py then refuses in its words. */
static long long job_id(const char *text)
{
    if (!*text || strlen(text) > 15)
        return 0;
    for (const char *c = text; *c; c++)
        if (!isdigit((unsigned char)*c))
            return 0;
    long long value = atoll(text);
    return value <= 2147483647LL ? value : 0;
}

/* -- finding the head node (config.py resolve/_endpoint, default_state_dir) --------------------------- */

/* Path() normalises what we cannot reproduce simply (a//b, a/./b, a/): those go to Python. */
static void set_socket_path(const char *folder, const char *name)
{
    int n = snprintf(socket_path, sizeof socket_path, "%s%s%s", folder, *name ? "/" : "", name);
    if (n < 0 || (size_t)n >= sizeof socket_path || !*socket_path || strstr(socket_path, "//") ||
        strstr(socket_path, "/./") || !strncmp(socket_path, "./", 2) || socket_path[n - 1] == '/' ||
        (n >= 2 && !strcmp(socket_path + n - 2, "/.")) || !printable_ascii(socket_path))
        hand_over();
}

static bool is_local_name(const char *name)
{
    static const char *local[] = {"", ".", "localhost", "127.0.0.1", "::1"};
    for (size_t i = 0; i < sizeof local / sizeof *local; i++)
        if (!strcasecmp(name, local[i]))
            return true;
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    size_t short_len = strcspn(host, ".");
    return !strcasecmp(name, host) || (strlen(name) == short_len && !strncasecmp(name, host, short_len));
}

static void find_socket(void)
{
    const char *ccp = getenv("CCP_SCHEDULER");
    char name[256] = "";
    if (ccp) {  /* one name (blanks around it dropped): several are alternatives, Python tries them */
        const char *start = ccp + strspn(ccp, " \t\n\r\f\v");
        size_t len = strlen(start);
        while (len && strchr(" \t\n\r\f\v", start[len - 1]))
            len--;
        if (len >= sizeof name || memchr(start, ',', len))
            hand_over();
        memcpy(name, start, len);
        if (!printable_ascii(name))
            hand_over();
    }
    if (!strncmp(name, "unix:", 5) || name[0] == '/')
        return set_socket_path(name + (name[0] == '/' ? 0 : 5), "");
    if (!is_local_name(name))
        hand_over();  /* a remote head node (TCP, MUNGE), or this machine's fully qualified name */
    const char *home = getenv("HPCPACK_HOME");
    if (home && *home)
        return set_socket_path(home, "headnode.sock");
    if (access("/var/lib/hpcpack/headnode.yaml", F_OK) == 0)
        return set_socket_path("/var/lib/hpcpack", "headnode.sock");
    const char *state = getenv("XDG_STATE_HOME");
    char folder[PATH_MAX];
    if (state && *state)
        snprintf(folder, sizeof folder, "%s/hpcpack", state);
    else if ((home = getenv("HOME")) && *home)
        snprintf(folder, sizeof folder, "%s/.local/state/hpcpack", home);
    else
        hand_over();
    set_socket_path(folder, "headnode.sock");
}

/* -- frames: 4-byte big-endian length, then JSON (wire/protocol.py) --------------------------------- */

/* All n bytes sent (data is then only read) or received, through interruptions; false when the head node
 * has gone. */
static bool move_all(char *data, size_t n, bool sending)
{
    while (n) {
        ssize_t done = sending ? send(sock, data, n, MSG_NOSIGNAL) : recv(sock, data, n, 0);
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0)
            return false;
        data += done;
        n -= (size_t)done;
    }
    return true;
}

static cJSON *exchange(const cJSON *request)
{
    char *body = cJSON_PrintUnformatted(request);
    size_t len = strlen(body);
    unsigned char header[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16), (unsigned char)(len >> 8),
                               (unsigned char)len};
    Buf frame = {0};  /* one send: the head node reads the frame at once */
    put(&frame, (char *)header, 4);
    put(&frame, body, len);
    bool sent = move_all(frame.data, frame.len, true);
    free(body);
    free(frame.data);
    if (!sent || !move_all((char *)header, 4, false))
        return NULL;
    uint32_t size = (uint32_t)header[0] << 24 | header[1] << 16 | header[2] << 8 | header[3];
    char *reply = size <= MAX_FRAME ? malloc(size + 1) : NULL;
    cJSON *parsed = reply && move_all(reply, size, false) ? cJSON_ParseWithLength(reply, size) : NULL;
    free(reply);
    return parsed;
}

static bool connect_and_greet(void)
{
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strcpy(address.sun_path, socket_path);
    sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&address, sizeof address) != 0)
        return false;
    cJSON *hello = cJSON_CreateObject();
    cJSON_AddStringToObject(hello, "op", "hello");
    cJSON *args = cJSON_AddObjectToObject(hello, "args");
    cJSON_AddNumberToObject(args, "protocol", PROTOCOL_VERSION);
    cJSON_AddStringToObject(args, "version", HPCPACK_VERSION);
    cJSON *reply = exchange(hello);
    cJSON_Delete(hello);
    cJSON *result = cJSON_GetObjectItemCaseSensitive(reply, "result");
    cJSON *protocol = cJSON_GetObjectItemCaseSensitive(result, "protocol");
    cJSON *version = cJSON_GetObjectItemCaseSensitive(result, "version");
    /* another version: Python restarts an embedded head node, or says why it cannot */
    bool same = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok")) && cJSON_IsNumber(protocol) &&
                protocol->valuedouble == PROTOCOL_VERSION && cJSON_IsString(version) &&
                !strcmp(version->valuestring, HPCPACK_VERSION);
    cJSON_Delete(reply);
    return same;
}

/* One operation (client.py Client.call): a change carries a request id, so that the one resend after a
 * lost connection applies once. Returns the result, or prints the head node's error and exits 1. */
static cJSON *call(const char *op, cJSON *args, bool change)
{
    cJSON *request = cJSON_CreateObject();
    cJSON_AddStringToObject(request, "op", op);
    cJSON_AddItemToObject(request, "args", args);
    if (change) {
        unsigned char random[16];
        char id[33];
        if (getrandom(random, sizeof random, 0) != sizeof random)
            hand_over();
        for (int i = 0; i < 16; i++)
            sprintf(id + 2 * i, "%02x", random[i]);
        cJSON_AddStringToObject(request, "request_id", id);
        changed = true;
        change_op = op;
    }
    cJSON *reply = exchange(request);
    if (!reply && changed) {  /* a restarted head node: once more (a change with the same request id) */
        close(sock);
        reply = connect_and_greet() ? exchange(request) : NULL;
    }
    cJSON_Delete(request);
    if (!reply)
        fail(strerror(errno ? errno : ECONNRESET));
    cJSON *error = cJSON_GetObjectItemCaseSensitive(reply, "error");
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
        cJSON *message = cJSON_GetObjectItemCaseSensitive(error, "message");
        if (!cJSON_IsString(message))
            fail("a reply it does not understand");
        if (!printable_ascii(message->valuestring) && !changed)
            hand_over();  /* Python writes it in its own encoding */
        Buf text = {0};
        put_visible(&text, message->valuestring);
        fprintf(stderr, "job: %s\n", text.data);
        exit(1);
    }
    return cJSON_DetachItemFromObjectCaseSensitive(reply, "result");
}

static cJSON *id_list(long long id)
{
    cJSON *args = cJSON_CreateObject();
    cJSON *ids = cJSON_AddArrayToObject(args, "ids");
    cJSON_AddItemToArray(ids, cJSON_CreateNumber((double)id));
    return args;
}

/* The one item of a reply about one job (an Item): its record, or its error printed (exit 1). */
static cJSON *one_item(cJSON *items, bool *failed)
{
    cJSON *item = cJSON_GetArrayItem(items, 0);
    cJSON *error = cJSON_GetObjectItemCaseSensitive(item, "error");
    cJSON *message = cJSON_GetObjectItemCaseSensitive(error, "message");
    if (cJSON_GetArraySize(items) != 1 || !cJSON_IsObject(item))
        fail("a reply it does not understand");
    *failed = error != NULL;
    if (error && !cJSON_IsString(message))
        fail("a reply it does not understand");
    if (error && !printable_ascii(message->valuestring))
        hand_over();
    if (error)
        fprintf(stderr, "job: %s\n", message->valuestring);
    return cJSON_GetObjectItemCaseSensitive(item, "job");
}

/* Text that may quote another user's (a job's ErrorMessage), as show._visible writes it: control characters
 * escaped as Python's repr does (\n, \x1b; C1 controls too, which UTF-8 carries as C2 80..C2 9F), so that
 * no job can retitle, clear or forge lines on the caller's terminal. Other UTF-8 goes through as it is. */
static void put_visible(Buf *b, const char *text)
{
    put(b, "", 0);
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        unsigned code = *c;
        if (code == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f)
            code = *++c;  /* U+0080..U+009F */
        else if (code >= 0x20 && code != 0x7f) {
            put(b, (const char *)c, 1);
            continue;
        }
        if (code == '\n' || code == '\r' || code == '\t')
            put(b, code == '\n' ? "\\n" : code == '\r' ? "\\r" : "\\t", 2);
        else
            putf(b, "\\x%02x", code);
    }
}

/* -- values as Python prints them ---------------------------------------------------------------- */

static const char *text_of(const cJSON *record, const char *key)
{
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(record, key);
    return cJSON_IsString(value) ? value->valuestring : NULL;
}

/* str(value), or `none` for null; text Python would print otherwise (floats, lists) goes to Python. */
static void put_value(Buf *b, const cJSON *value, const char *none)
{
    if (!value || cJSON_IsNull(value))
        put(b, none, strlen(none));
    else if (cJSON_IsBool(value))
        put(b, cJSON_IsTrue(value) ? "True" : "False", cJSON_IsTrue(value) ? 4 : 5);
    else if (cJSON_IsNumber(value) && whole(value->valuedouble))
        putf(b, "%lld", (long long)value->valuedouble);
    else if (cJSON_IsString(value) && printable_ascii(value->valuestring))
        put(b, value->valuestring, strlen(value->valuestring));
    else if (cJSON_IsString(value) && changed)  /* too late for Python: escaped as show._visible does */
        put_visible(b, value->valuestring);
    else
        hand_over();
}

/* record.get(key, 0) in an f-string */
static void put_value_or_0(Buf *b, const cJSON *value)
{
    if (value)
        put_value(b, value, "None");
    else
        put(b, "0", 1);
}

static bool truthy(const cJSON *value)
{
    return value && !cJSON_IsNull(value) && !cJSON_IsFalse(value) &&
           !(cJSON_IsString(value) && !*value->valuestring) && !(cJSON_IsNumber(value) && value->valuedouble == 0);
}

/* datetime.fromisoformat of the head node's times (2026-11-30T15:47:23.123456+00:00): POSIX seconds and
 * microseconds; any other form goes to Python. */
static void parse_time(const char *text, long long *seconds, long *micro)
{
    struct tm t = {0};
    int used = 0, hours, minutes;
    char sign;
    if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &t.tm_year, &t.tm_mon, &t.tm_mday, &t.tm_hour, &t.tm_min,
               &t.tm_sec, &used) != 6 || used != 19)
        hand_over();
    const char *rest = text + 19;
    *micro = 0;
    if (*rest == '.') {
        int digits = (int)strspn(rest + 1, "0123456789");
        if (digits != 3 && digits != 6)
            hand_over();
        *micro = strtol(rest + 1, NULL, 10) * (digits == 3 ? 1000 : 1);
        rest += 1 + digits;
    }
    if (sscanf(rest, "%c%2d:%2d%n", &sign, &hours, &minutes, &used) != 3 || used != 6 || rest[6] ||
        (sign != '+' && sign != '-'))
        hand_over();
    t.tm_year -= 1900;
    t.tm_mon -= 1;
    *seconds = (long long)timegm(&t) - (sign == '-' ? -1 : 1) * (hours * 3600LL + minutes * 60LL);
}

/* show._time: the local time, %Y-%m-%d %H:%M:%S; "" without one. */
static void put_time(Buf *b, const cJSON *record, const char *key)
{
    const char *text = text_of(record, key);
    if (!truthy(cJSON_GetObjectItemCaseSensitive(record, key)))
        return;
    if (!text)
        hand_over();
    long long seconds;
    long micro;
    parse_time(text, &seconds, &micro);
    time_t when = (time_t)seconds;
    struct tm local;
    char shown[64];
    localtime_r(&when, &local);
    put(b, shown, strftime(shown, sizeof shown, "%Y-%m-%d %H:%M:%S", &local));
}

/* show.elapsed: run time so far (or in all, once ended), [days-]hours:minutes:seconds. */
static void put_elapsed(Buf *b, const cJSON *record)
{
    if (!truthy(cJSON_GetObjectItemCaseSensitive(record, "StartTime")))
        return;
    const char *start_text = text_of(record, "StartTime"), *end_text = text_of(record, "EndTime");
    long long start, end;
    long start_micro, end_micro;
    if (!start_text)
        hand_over();
    parse_time(start_text, &start, &start_micro);
    if (truthy(cJSON_GetObjectItemCaseSensitive(record, "EndTime"))) {
        if (!end_text)
            hand_over();
        parse_time(end_text, &end, &end_micro);
    } else {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        end = now.tv_sec;
        end_micro = now.tv_nsec / 1000;
    }
    long long seconds = ((end - start) * 1000000 + (end_micro - start_micro)) / 1000000;  /* int(): toward 0 */
    if (seconds < 0)
        seconds = 0;
    long long days = seconds / 86400, rest = seconds % 86400;
    if (days)
        putf(b, "%lld-", days);
    putf(b, "%lld:%02lld:%02lld", rest / 3600, rest / 60 % 60, rest % 60);
}

/* -- job view <jobID> ---------------------------------------------------------------------------- */

static const char *VIEW_FIELDS[] = {"Id", "Name", "Owner", "State", "Priority", "Project", "Template",
                                    "Resources", "AllocatedNodes", "Tasks", "PendingReason", "SubmitTime",
                                    "StartTime", "EndTime", "Elapsed", "RunUntilCanceled", "RequeueCount",
                                    "ErrorMessage", "HeadNode"};

/* show._resources: "1-4 cores, 2 cores allocated" */
static void put_resources(Buf *b, const cJSON *job)
{
    const char *type = text_of(job, "UnitType"), *unit = "Cores";
    if (cJSON_GetObjectItemCaseSensitive(job, "UnitType") && !type)
        hand_over();
    if (type && !strcmp(type, "Socket"))
        unit = "Sockets";
    else if (type && !strcmp(type, "Node"))
        unit = "Nodes";
    char low_key[16], high_key[16];
    snprintf(low_key, sizeof low_key, "Min%s", unit);
    snprintf(high_key, sizeof high_key, "Max%s", unit);
    const cJSON *low = cJSON_GetObjectItemCaseSensitive(job, low_key);
    const cJSON *high = cJSON_GetObjectItemCaseSensitive(job, high_key);
    if (truthy(cJSON_GetObjectItemCaseSensitive(job, "AutoCalculateMax"))) {
        put(b, "*", 1);
    } else {
        if (!cJSON_IsNumber(low) || !cJSON_IsNumber(high))
            hand_over();
        if (low->valuedouble != high->valuedouble) {
            put_value(b, low, "None");
            put(b, "-", 1);
        }
        put_value(b, high, "None");
    }
    putf(b, " %s, ", unit[0] == 'C' ? "cores" : unit[0] == 'S' ? "sockets" : "nodes");
    put_value_or_0(b, cJSON_GetObjectItemCaseSensitive(job, "CurrentAllocation"));
    put(b, " cores allocated", 16);
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "3 (1 Finished, 2 Queued)": the tasks by state, states in order; "0 (none)" */
static void put_task_counts(Buf *b, const cJSON *tasks)
{
    int total = cJSON_GetArraySize(tasks), distinct = 0;
    const char **states = calloc((size_t)total + 1, sizeof *states);
    const cJSON *task;
    cJSON_ArrayForEach(task, tasks) {
        const char *state = text_of(task, "State");
        if (!state || !printable_ascii(state))
            hand_over();
        states[distinct++] = state;
    }
    qsort(states, (size_t)distinct, sizeof *states, by_text);
    putf(b, "%d (", total);
    for (int i = 0; i < distinct;) {
        int same = 1;
        while (i + same < distinct && !strcmp(states[i], states[i + same]))
            same++;
        putf(b, "%s%d ", i ? ", " : "", same);
        put(b, states[i], strlen(states[i]));
        i += same;
    }
    put(b, total ? ")" : "none)", total ? 1 : 5);
    free(states);
}

static void put_nodes(Buf *b, const cJSON *job)
{
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(job, "AllocatedNodes"), *node;
    if (nodes && !cJSON_IsNull(nodes) && !cJSON_IsArray(nodes))
        hand_over();
    bool first = true;
    cJSON_ArrayForEach(node, nodes) {
        if (!cJSON_IsString(node))
            hand_over();
        if (!first)
            put(b, ", ", 2);
        put_value(b, node, "");
        first = false;
    }
}

static void put_field(Buf *b, const char *key, const cJSON *job, const cJSON *tasks)
{
    if (!strcmp(key, "Resources"))
        put_resources(b, job);
    else if (!strcmp(key, "AllocatedNodes"))
        put_nodes(b, job);
    else if (!strcmp(key, "Tasks"))
        put_task_counts(b, tasks);
    else if (!strcmp(key, "Elapsed"))
        put_elapsed(b, job);
    else if (!strcmp(key, "HeadNode"))
        putf(b, "unix:%s", socket_path);
    else if (!strcmp(key, "SubmitTime") || !strcmp(key, "StartTime") || !strcmp(key, "EndTime"))
        put_time(b, job, key);
    else
        put_value(b, cJSON_GetObjectItemCaseSensitive(job, key), "");
}

/* show._list of one block: "Key<padded> : value", trailing blanks dropped. */
static void put_view(Buf *out, const cJSON *job, const cJSON *tasks)
{
    size_t width = 0;
    for (size_t i = 0; i < sizeof VIEW_FIELDS / sizeof *VIEW_FIELDS; i++)
        width = strlen(VIEW_FIELDS[i]) > width ? strlen(VIEW_FIELDS[i]) : width;
    for (size_t i = 0; i < sizeof VIEW_FIELDS / sizeof *VIEW_FIELDS; i++) {
        size_t start = out->len;
        putf(out, "%-*s : ", (int)width, VIEW_FIELDS[i]);
        put_field(out, VIEW_FIELDS[i], job, tasks);
        while (out->len > start && out->data[out->len - 1] == ' ')
            out->len--;
        put(out, "\n", 1);
    }
}

static int flush(const Buf *out, FILE *stream)
{
    if (out->len && fwrite(out->data, 1, out->len, stream) != out->len)
        return errno == EPIPE ? EXIT_BROKEN_PIPE : 1;
    return fflush(stream) == 0 ? 0 : errno == EPIPE ? EXIT_BROKEN_PIPE : 1;
}

static long long view_id;

static int view(void)
{
    long long id = view_id;
    bool failed;
    cJSON *found = call("lookup_jobs", id_list(id), false);
    cJSON *job = one_item(found, &failed);
    if (failed)
        return 1;
    if (!cJSON_IsObject(job)) {
        fprintf(stderr, "job: No job %lld.\n", id);
        return 1;
    }
    cJSON *query = cJSON_CreateObject();
    cJSON_AddNumberToObject(query, "job_id", (double)id);
    cJSON_AddTrueToObject(query, "expand");
    cJSON_AddFalseToObject(query, "full");
    cJSON_AddTrueToObject(query, "counted");
    cJSON *page = call("get_tasks", query, false);
    cJSON *tasks = cJSON_GetObjectItemCaseSensitive(page, "tasks");
    if (!cJSON_IsArray(tasks) || !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(page, "more")))
        hand_over();  /* tasks past one page (protocol.PAGE_BYTES): job-py reads them page by page */
    Buf out = {0};
    put_view(&out, job, tasks);
    return flush(&out, stdout);
}

/* -- job list ------------------------------------------------------------------------------------ */

typedef struct {
    const char *label;
    int width;  /* 0: what the others leave */
    bool right;
} Column;

static const Column JOB_COLUMNS[] = {{"Id", 5, true}, {"Owner", 8, false}, {"Name", 0, false},
                                     {"State", 11, false}, {"Tasks", 7, true}, {"Elapsed", 9, true},
                                     {"Reason", 14, false}};
#define NCOLUMNS ((int)(sizeof JOB_COLUMNS / sizeof *JOB_COLUMNS))

/* show._width: shutil.get_terminal_size((80, 24)) at a terminal (COLUMNS first), else 80. */
static int terminal_width(void)
{
    if (!isatty(STDOUT_FILENO))
        return 80;
    const char *columns = getenv("COLUMNS");
    if (columns && *columns) {
        if (strspn(columns, "0123456789") != strlen(columns) || strlen(columns) > 6)
            hand_over();  /* int() takes more forms than digits */
        if (atoi(columns) > 0)
            return atoi(columns);
    }
    struct winsize size;
    return ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0 ? size.ws_col : 80;
}

/* show._cell: cut with an ellipsis (UTF-8, as Python writes it), padded to its width. */
static void put_cell(Buf *b, const char *text, int size, bool right)
{
    int len = (int)strlen(text);
    if (len > size) {
        if (getenv("PYTHONIOENCODING"))
            hand_over();  /* Python might write the ellipsis otherwise */
        put(b, text, (size_t)size - 1);
        put(b, "\xe2\x80\xa6", 3);
        return;
    }
    if (right)
        putf(b, "%*s", size - len, "");
    put(b, text, (size_t)len);
    if (!right)
        putf(b, "%*s", size - len, "");
}

static void put_row(Buf *out, const char **cells, const int *sizes)
{
    size_t start = out->len;
    for (int i = 0; i < NCOLUMNS; i++) {
        if (i)
            put(out, " ", 1);
        put_cell(out, cells[i], sizes[i], JOB_COLUMNS[i].right);
        if (i < NCOLUMNS - 1)
            put(out, " ", 1);
    }
    while (out->len > start && out->data[out->len - 1] == ' ')
        out->len--;
    put(out, "\n", 1);
}

/* One row's cells as show.jobs makes them; text it cannot lay out as rich would goes to Python. */
static void job_cells(const cJSON *job, Buf *cells, size_t *ends)
{
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(job, "State");
    const char *keys[] = {"Id", "Owner", "Name", "State"};
    for (int i = 0; i < 4; i++) {
        if (i > 0 && !text_of(job, keys[i]))
            hand_over();
        put_value(cells, cJSON_GetObjectItemCaseSensitive(job, keys[i]), "None");
        ends[i] = cells->len;
        put(cells, "", 1);
    }
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(job, "TaskCount");
    put_value_or_0(cells, cJSON_GetObjectItemCaseSensitive(job, "FinishedTaskCount"));
    put(cells, "/", 1);
    put_value_or_0(cells, count ? count : cJSON_GetObjectItemCaseSensitive(job, "NumberOfTasks"));
    ends[4] = cells->len;
    put(cells, "", 1);
    put_elapsed(cells, job);
    ends[5] = cells->len;
    put(cells, "", 1);
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(job, "PendingReason");
    if (!truthy(reason) && cJSON_IsString(state) &&
        (!strcmp(state->valuestring, "Failed") || !strcmp(state->valuestring, "Canceled")))
        reason = cJSON_GetObjectItemCaseSensitive(job, "ErrorMessage");
    if (truthy(reason))
        put_value(cells, reason, "");
    ends[6] = cells->len;
    put(cells, "", 1);
}

/* One job's row; cells that are not printable ASCII (wide characters) are rich's to lay out. */
static void put_job_row(Buf *out, const cJSON *job, const int *sizes)
{
    Buf cells = {0};
    size_t ends[NCOLUMNS];
    const char *row[NCOLUMNS];
    job_cells(job, &cells, ends);
    for (int i = 0; i < NCOLUMNS; i++)
        if (!printable_ascii(row[i] = cells.data + (i ? ends[i - 1] + 1 : 0)))
            hand_over();
    put_row(out, row, sizes);
    free(cells.data);
}

/* The header and its rule of dashes, at these column sizes. */
static void put_header(Buf *out, const int *sizes)
{
    const char *labels[NCOLUMNS];
    for (int i = 0; i < NCOLUMNS; i++)
        labels[i] = JOB_COLUMNS[i].label;
    put_row(out, labels, sizes);
    for (int i = 0; i < NCOLUMNS; i++) {
        if (i)
            put(out, " ", 1);
        for (int dash = 0; dash < sizes[i] + (i < NCOLUMNS - 1); dash++)
            put(out, "-", 1);
    }
    put(out, "\n", 1);
}

/* show._plain_table's sizes: the fixed ones, and what they leave for Name; too narrow is rich's to draw. */
static void column_sizes(int *sizes)
{
    int width = terminal_width(), fixed = NCOLUMNS - 1;
    for (int i = 0; i < NCOLUMNS; i++)
        fixed += JOB_COLUMNS[i].width ? JOB_COLUMNS[i].width + (i < NCOLUMNS - 1) : 0;
    for (int i = 0; i < NCOLUMNS; i++)
        if ((sizes[i] = JOB_COLUMNS[i].width ? JOB_COLUMNS[i].width : width - fixed - (i < NCOLUMNS - 1)) < 1)
            hand_over();
}

/* What the list shows of each job: all the head node sends (show.LIST_FIELDS, in the same order). */
static const char *const LIST_FIELDS[] = {"Id", "Name", "Owner", "State", "Priority", "TaskCount",
    "FinishedTaskCount", "SubmitTime", "StartTime", "EndTime", "PendingReason", "ErrorMessage"};
#define NLIST_FIELDS ((int)(sizeof LIST_FIELDS / sizeof *LIST_FIELDS))

static int list(void)
{
    int sizes[NCOLUMNS];
    column_sizes(sizes);
    Buf out = {0};
    put_header(&out, sizes);
    long long after = -1;
    for (;;) {  /* pages, as HeadNodeBackend.query_jobs reads them */
        cJSON *args = cJSON_CreateObject();
        cJSON_AddItemToObject(args, "after", after < 0 ? cJSON_CreateNull() : cJSON_CreateNumber((double)after));
        cJSON_AddNumberToObject(args, "limit", MAX_IDS);
        cJSON_AddItemToObject(args, "fields", cJSON_CreateStringArray(LIST_FIELDS, NLIST_FIELDS));
        cJSON_AddTrueToObject(args, "counted");
        cJSON *page = call("get_jobs", args, false), *job;
        cJSON *jobs = cJSON_GetObjectItemCaseSensitive(page, "jobs");
        const cJSON *more = cJSON_GetObjectItemCaseSensitive(page, "more");
        if (!cJSON_IsArray(jobs) || !cJSON_IsBool(more))
            hand_over();
        cJSON_ArrayForEach(job, jobs) {
            put_job_row(&out, job, sizes);
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(job, "Id");
            long long next = cJSON_IsNumber(id) && whole(id->valuedouble) ? (long long)id->valuedouble : -1;
            after = after == -2 || next <= after ? -2 : next;  /* ids that do not go up: no next page */
        }
        /* a page ends early where its text fills protocol.PAGE_BYTES, and says so ("more") */
        bool full = cJSON_GetArraySize(jobs) == MAX_IDS || cJSON_IsTrue(more);
        cJSON_Delete(page);
        if (!full)
            break;
        if (after < 0)
            hand_over();
    }
    return flush(&out, stdout);
}

/* -- job cancel <jobID> [/force|/graceful] [/message:<text>] ----------------------------------------- */

static char interrupted[160] = "job: interrupted\n";

static void on_interrupt(int signal_number)
{
    (void)signal_number;
    ssize_t ignored = write(STDERR_FILENO, interrupted, strlen(interrupted));
    (void)ignored;
    _exit(EXIT_INTERRUPTED);
}

static double now_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + now.tv_nsec / 1e9;
}

static bool ended(const char *state)
{
    return state && (!strcmp(state, "Finished") || !strcmp(state, "Failed") || !strcmp(state, "Canceled"));
}

/* stopping._wait_for_jobs: wait_jobs slices until the job has ended or the cancel's time limit passed. */
static char *wait_for_job(long long id)
{
    cJSON *limit = call("cancel_time_limit", cJSON_CreateObject(), false);
    double deadline = now_seconds() + (cJSON_IsNumber(limit) ? limit->valuedouble : 0);
    char key[32], *state = NULL;
    snprintf(key, sizeof key, "%lld", id);
    for (bool first = true;; first = false) {
        cJSON *args = id_list(id);
        cJSON_AddNumberToObject(args, "timeout", WAIT_SLICE);
        cJSON *states = call("wait_jobs", args, false);
        const char *now = text_of(states, key);
        if (now) {
            free(state);
            state = strdup(now);
        }
        cJSON_Delete(states);
        if (!ended(state) && first)  /* as Python: the grace period's end, read once, for progress */
            cJSON_Delete(call("lookup_jobs", id_list(id), false));
        if (ended(state) || now_seconds() > deadline)
            return state;
    }
}

/* A line on stdout, and the exit status: 0, or as Python's when stdout is gone. */
static int say(const char *format, long long id)
{
    Buf out = {0};
    putf(&out, format, id);
    return flush(&out, stdout);
}

/* stopping._outcome, for one job canceled and waited for. */
static int cancel_outcome(long long id, const char *state)
{
    bool failed;
    cJSON *job = one_item(call("lookup_jobs", id_list(id), false), &failed);
    if (failed)
        return 1;
    if ((state && !strcmp(state, "Canceled")) || !cJSON_IsObject(job))
        return say("Job %lld canceled.\n", id);
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(job, "ErrorMessage");
    Buf message = {0};
    if (state && (!strcmp(state, "Canceling") || !strcmp(state, "Finishing")))
        putf(&message, "Job %lld did not reach Canceled in time; it is still %s. ", id, state);
    else
        putf(&message, "Job %lld ended %s, not Canceled: ", id, state ? state : "None");
    if (truthy(reason))
        put_value(&message, reason, "");
    if (state && (!strcmp(state, "Canceling") || !strcmp(state, "Finishing")))
        while (message.len && isspace((unsigned char)message.data[message.len - 1]))
            message.data[--message.len] = 0;
    fprintf(stderr, "job: %s\n", message.data);
    return 1;
}

static struct {
    long long id;
    bool force, graceful;
    const char *message;
} stop;

/* The words after the job ID: /force, /graceful, /message:<text> (any case), each once; else Python. */
static void parse_cancel(int argc, char **argv)
{
    stop.id = argc >= 3 ? job_id(argv[2]) : 0;
    if (!stop.id)
        hand_over();
    for (int i = 3; i < argc; i++) {
        if (!strcasecmp(argv[i], "/force") && !stop.force)
            stop.force = true;
        else if (!strcasecmp(argv[i], "/graceful") && !stop.graceful)
            stop.graceful = true;
        else if (!strncasecmp(argv[i], "/message:", 9) && !stop.message && argv[i][9] &&
                 strlen(argv[i] + 9) <= MAX_MESSAGE && printable_ascii(argv[i] + 9))
            stop.message = argv[i] + 9;
        else
            hand_over();
    }
    if (stop.force && stop.graceful)
        hand_over();  /* Python says why not */
}

static int cancel(void)
{
    snprintf(interrupted, sizeof interrupted,
             "job cancel: stopped waiting; the head node goes on cancelling job %lld.\n", stop.id);
    cJSON *args = id_list(stop.id);
    cJSON_AddBoolToObject(args, "force", stop.force);
    cJSON_AddBoolToObject(args, "graceful", stop.graceful);
    cJSON_AddItemToObject(args, "message", stop.message ? cJSON_CreateString(stop.message) : cJSON_CreateNull());
    cJSON_AddNullToObject(args, "state");
    bool failed;
    one_item(call("cancel_jobs", args, true), &failed);
    if (failed)
        return 1;
    if (stop.graceful)
        return say("Job %lld will be canceled when its running tasks end.\n", stop.id);
    return cancel_outcome(stop.id, wait_for_job(stop.id));
}

/* -- job submit [/numcores:<n>] <command> [<parameters>...] -------------------------------------------- */

static struct {
    const char *cores;
    Buf line;
} submission;

/* The command line: not an option, not a job ID (job submit 5), ASCII (Python reads other bytes its way). */
static void parse_submit(int argc, char **argv)
{
    int first = 2;
    if (first < argc && !strncasecmp(argv[first], "/numcores:", 10) && argv[first][10] &&
        printable_ascii(argv[first] + 10))
        submission.cores = argv[first++] + 10;
    if (first >= argc || argv[first][0] == '/' || argv[first][0] == '-' ||
        strspn(argv[first], "0123456789") == strlen(argv[first]))
        hand_over();
    put(&submission.line, "", 0);
    for (int i = first; i < argc; i++) {
        for (const char *c = argv[i]; *c; c++)
            if ((unsigned char)*c > 0x7e)
                hand_over();
        if (i > first)
            put(&submission.line, " ", 1);
        put(&submission.line, argv[i], strlen(argv[i]));
    }
}

static int submit(void)
{
    cJSON *args = cJSON_CreateObject();
    cJSON *spec = cJSON_AddObjectToObject(args, "spec");
    if (submission.cores)
        cJSON_AddStringToObject(spec, "NumCores", submission.cores);
    cJSON *task = cJSON_CreateObject();
    cJSON_AddStringToObject(task, "CommandLine", submission.line.data);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(args, "tasks"), task);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(call("new_job", args, true), "Id");
    if (!cJSON_IsNumber(id) || !whole(id->valuedouble) || id->valuedouble < 1)
        fail("a reply it does not understand");
    bool failed;
    long long number = (long long)id->valuedouble;
    one_item(call("submit_jobs", id_list(number), true), &failed);
    return failed ? 1 : say("Job has been submitted. ID: %lld.\n", number);
}

/* -- main ---------------------------------------------------------------------------------------- */

/* The command this client does itself, its words checked; anything else goes to Python unsent. */
static int (*command_for(int argc, char **argv))(void)
{
    const char *name = argc >= 2 ? argv[1] : "";
    if (!strcasecmp(name, "view") && argc == 3 && (view_id = job_id(argv[2])))
        return view;
    if (!strcasecmp(name, "list") && argc == 2)
        return list;
    if (!strcasecmp(name, "cancel"))
        return parse_cancel(argc, argv), cancel;
    if (!strcasecmp(name, "submit"))
        return parse_submit(argc, argv), submit;
    hand_over();
}

int main(int argc, char **argv)
{
    words = argv;
    int (*command)(void) = command_for(argc, argv);
    find_socket();
    if (!connect_and_greet())
        hand_over();  /* down (Python starts it), refused, or another version */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_interrupt);
    return command();
}
