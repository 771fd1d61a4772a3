/* The physical limit with hashing: GET one URL over an MPTCP socket and sha256 the body.
 *
 *   recv_sha256 [--no-hash] HOST PORT PATH [tls]
 *
 * One thread: recv (or SSL_read) into one 1 MiB buffer, then EVP sha256 of it; no output file.
 * Prints the body's sha256 (or its length with --no-hash).  Built by bench/throughput.py with
 * `gcc -O2 recv_sha256.c -lssl -lcrypto`; the certificate is not checked (a lab peer). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#define BUF (1 << 20)

static SSL *ssl;
static int fd;

static long rd(char *buf, long n) {
    return ssl ? SSL_read(ssl, buf, (int)n) : recv(fd, buf, n, 0);
}

int main(int argc, char **argv) {
    int hash = 1;
    if (argc > 1 && strcmp(argv[1], "--no-hash") == 0) { hash = 0; argv++; argc--; }
    if (argc < 4) { fprintf(stderr, "usage: recv_sha256 [--no-hash] HOST PORT PATH [tls]\n"); return 2; }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &sa.sin_addr);
    fd = socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("connect"); return 1; }
    if (argc > 4) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) != 1) { fprintf(stderr, "TLS handshake failed\n"); return 1; }
    }
    char req[512];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", argv[3], argv[1]);
    if ((ssl ? SSL_write(ssl, req, len) : send(fd, req, len, 0)) != len) { perror("send"); return 1; }
    char *buf = malloc(BUF);
    long have = 0, n;
    char *body = NULL;
    while (!body && (n = rd(buf + have, BUF - 1 - have)) > 0) {     /* the header, and what follows it */
        have += n;
        buf[have] = 0;
        body = strstr(buf, "\r\n\r\n");
    }
    if (!body) { fprintf(stderr, "no HTTP header\n"); return 1; }
    body += 4;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    long total = have - (body - buf);
    if (hash) EVP_DigestUpdate(md, body, total);
    while ((n = rd(buf, BUF)) > 0) {
        total += n;
        if (hash) EVP_DigestUpdate(md, buf, n);
    }
    if (n < 0 && !ssl) { perror("recv"); return 1; }
    if (!hash) { printf("%ld\n", total); return 0; }
    unsigned char out[32];
    unsigned int outlen;
    EVP_DigestFinal_ex(md, out, &outlen);
    for (unsigned i = 0; i < outlen; i++) printf("%02x", out[i]);
    printf("\n");
    return 0;
}
