package dev.wsproxy;

import java.io.BufferedInputStream;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.SequenceInputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLServerSocket;

/**
 * A scripted backend on a bare {@link ServerSocket} (127.0.0.1, port 0), for the answers a real WebSocket server
 * never gives: silence, {@code 200}, a {@code 101} with a wrong accept or an unoffered subprotocol, a {@code 101} held
 * back until the test releases it.
 *
 * <p>Each connection reads one request head, records it, waits for the gate, writes the scripted reply (nothing when
 * the reply is {@code null}) and then reads until the proxy closes. After a {@code 101} it speaks WebSocket: it echoes
 * unfragmented data frames and answers a close frame with the same close frame, then closes its socket. How each connection ended
 * is recorded in {@link #ends}: {@code eof} (the proxy closed the socket), {@code reset}, or {@code close:CODE} (the
 * proxy sent a close frame with CODE). Every frame the proxy sends after a {@code 101} is recorded in {@link #frames}.
 *
 * <p>It also reads what a proxy should not send, so that a test can see that nothing came: while a {@link #holding}
 * backend waits for its gate, whatever arrives is recorded in {@link #beforeReply} (and then read as usual, after the
 * reply); after any reply other than a {@code 101}, every further request head (or bytes that end the connection
 * before a head is complete) is recorded in {@link #requests} like the first.
 */
final class RawBackend implements AutoCloseable {

    /** Computes the raw response to a handshake; {@code null} means staying silent. */
    @FunctionalInterface
    interface Reply {
        String response(Request request);
    }

    /**
     * What the backend does right after writing a {@code 101}, before it starts echoing: write raw frames, half-close,
     * reset. It may close the socket; if it returns with the socket open, the backend speaks WebSocket as usual.
     */
    @FunctionalInterface
    interface AfterUpgrade {
        void run(Socket socket, OutputStream out) throws IOException;
    }

    /** A request head as the backend received it. */
    record Request(String head) {
        String requestLine() {
            return head.substring(0, head.indexOf("\r\n"));
        }

        /** Every value of the header, joined with {@code ", "}, or {@code null} when absent. */
        String header(String name) {
            List<String> values = new ArrayList<>();
            for (String line : head.split("\r\n")) {
                int colon = line.indexOf(':');
                if (colon > 0 && line.substring(0, colon).trim().equalsIgnoreCase(name)) {
                    values.add(line.substring(colon + 1).trim());
                }
            }
            return values.isEmpty() ? null : String.join(", ", values);
        }

        /** Every header line by lower-case name, the values of repeated lines in order. */
        Map<String, List<String>> headers() {
            Map<String, List<String>> headers = new LinkedHashMap<>();
            for (String line : head.split("\r\n")) {
                int colon = line.indexOf(':');
                if (colon > 0) {
                    headers.computeIfAbsent(line.substring(0, colon).trim().toLowerCase(Locale.ROOT),
                            name -> new ArrayList<>()).add(line.substring(colon + 1).trim());
                }
            }
            return headers;
        }
    }

    final AtomicInteger connections = new AtomicInteger();
    /** The most connections open at once so far. */
    final AtomicInteger mostOpen = new AtomicInteger();
    final BlockingQueue<Request> requests = new LinkedBlockingQueue<>();
    final BlockingQueue<RawFrames.Frame> frames = new LinkedBlockingQueue<>();
    /** Bytes the proxy sent after the request head while the backend was held, one entry per read. */
    final BlockingQueue<byte[]> beforeReply = new LinkedBlockingQueue<>();
    final BlockingQueue<String> ends = new LinkedBlockingQueue<>();
    /** The request bodies a {@link #readingBodies} backend read, one per request. */
    final BlockingQueue<String> bodies = new LinkedBlockingQueue<>();
    private final ServerSocket server;
    private final Reply reply;
    private final AfterUpgrade afterUpgrade;
    private final boolean echo;
    private final boolean closeAfterReply;
    private final boolean readsBodies;
    /** What a {@link #readingBodies} backend writes before its {@code 100 Continue}: interim responses, or nothing. */
    private final String beforeContinue;
    private final CountDownLatch gate;
    private final Set<Socket> open = ConcurrentHashMap.newKeySet();
    private final Thread acceptor;

    private RawBackend(Reply reply, boolean held) throws IOException {
        this(reply, held, (socket, out) -> { }, true);
    }

    private RawBackend(Reply reply, boolean held, AfterUpgrade afterUpgrade, boolean echo) throws IOException {
        this(reply, held, afterUpgrade, echo, false);
    }

    private RawBackend(Reply reply, boolean held, AfterUpgrade afterUpgrade, boolean echo, boolean closeAfterReply)
            throws IOException {
        this(reply, held, afterUpgrade, echo, closeAfterReply, null);
    }

    private RawBackend(Reply reply, boolean held, AfterUpgrade afterUpgrade, boolean echo, boolean closeAfterReply,
            SSLContext tls) throws IOException {
        this(reply, held, afterUpgrade, echo, closeAfterReply, tls, false);
    }

    private RawBackend(Reply reply, boolean held, AfterUpgrade afterUpgrade, boolean echo, boolean closeAfterReply,
            SSLContext tls, boolean readsBodies) throws IOException {
        this(reply, held, afterUpgrade, echo, closeAfterReply, tls, readsBodies, "");
    }

    private RawBackend(Reply reply, boolean held, AfterUpgrade afterUpgrade, boolean echo, boolean closeAfterReply,
            SSLContext tls, boolean readsBodies, String beforeContinue) throws IOException {
        this.reply = reply;
        this.readsBodies = readsBodies;
        this.beforeContinue = beforeContinue;
        this.closeAfterReply = closeAfterReply;
        this.afterUpgrade = afterUpgrade;
        this.echo = echo;
        this.gate = new CountDownLatch(held ? 1 : 0);
        this.server = tls == null ? new ServerSocket(0, 50, InetAddress.getLoopbackAddress())
                : tls.getServerSocketFactory().createServerSocket(0, 50, InetAddress.getLoopbackAddress());
        this.acceptor = new Thread(this::acceptLoop, "raw-backend-" + server.getLocalPort());
        acceptor.setDaemon(true);
        acceptor.start();
    }

    /** A backend that answers every handshake at once with {@code reply}. */
    static RawBackend answering(Reply reply) throws IOException {
        return new RawBackend(reply, false);
    }

    /**
     * A backend that answers every handshake with {@code reply} and closes its socket at once, whatever it wrote: a
     * body delimited by the end of the connection, or a response cut short.
     */
    static RawBackend answeringThenClosing(Reply reply) throws IOException {
        return new RawBackend(reply, false, (socket, out) -> { }, false, true);
    }

    /**
     * A backend for plain HTTP requests with a body: it answers {@code 100 Continue} to a request that expects it,
     * reads the body (framed by {@code Content-Length} or chunked), records it in {@link #bodies}, then answers with
     * {@code reply}.
     */
    static RawBackend readingBodies(Reply reply) throws IOException {
        return new RawBackend(reply, false, (socket, out) -> { }, false, false, null, true);
    }

    /**
     * Like {@link #readingBodies}, writing the raw {@code interim} responses first, before its {@code 100 Continue}
     * (as a resumable-upload server sends {@code 104 Upload Resumption Supported}), to a request that expects it.
     */
    static RawBackend readingBodiesAfter(String interim, Reply reply) throws IOException {
        return new RawBackend(reply, false, (socket, out) -> { }, false, false, null, true, interim);
    }

    /** A backend that answers every handshake with a valid {@code 101}, then runs {@code afterUpgrade}. */
    static RawBackend upgradingThen(AfterUpgrade afterUpgrade) throws IOException {
        return new RawBackend(switching(null), false, afterUpgrade, true);
    }

    /** A backend that answers every handshake with {@code reply}, a {@code 101}, then runs {@code afterUpgrade}. */
    static RawBackend answeringThen(Reply reply, AfterUpgrade afterUpgrade) throws IOException {
        return new RawBackend(reply, false, afterUpgrade, true);
    }

    /** Like {@link #upgradingThen}, over TLS with {@code certificate}'s key: a {@code wss://} backend. */
    static RawBackend upgradingThenOverTls(AfterUpgrade afterUpgrade, TestCertificates.Certificate certificate)
            throws Exception {
        return new RawBackend(switching(null), false, afterUpgrade, true, false, serverTls(certificate));
    }

    /** Like {@link #answering}, over TLS with {@code certificate}'s key: a {@code wss://} backend. */
    static RawBackend answeringOverTls(Reply reply, TestCertificates.Certificate certificate) throws Exception {
        return new RawBackend(reply, false, (socket, out) -> { }, true, false, serverTls(certificate));
    }

    private static SSLContext serverTls(TestCertificates.Certificate certificate) throws Exception {
        KeyStore keys = KeyStore.getInstance(certificate.keyStore().toFile(),
                TestCertificates.PASSWORD.toCharArray());
        KeyManagerFactory keyManagers = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        keyManagers.init(keys, TestCertificates.PASSWORD.toCharArray());
        SSLContext tls = SSLContext.getInstance("TLS");
        tls.init(keyManagers.getKeyManagers(), null, null);
        return tls;
    }

    /**
     * A backend that answers every handshake with a valid {@code 101} and then only records: it never writes a data
     * frame, so nothing it sends can cross a close frame from the proxy.
     */
    static RawBackend recording() throws IOException {
        return new RawBackend(switching(null), false, (socket, out) -> { }, false);
    }

    /** Like {@link #recording()}, answering every handshake with {@code reply}, a {@code 101}. */
    static RawBackend recording(Reply reply) throws IOException {
        return new RawBackend(reply, false, (socket, out) -> { }, false);
    }

    /** A backend that records each handshake but answers only after {@link #release()}. */
    static RawBackend holding(Reply reply) throws IOException {
        return new RawBackend(reply, true);
    }

    /** Accepts the TCP connection, reads the request and never answers. */
    static Reply silent() {
        return request -> null;
    }

    /** Always the same raw response. */
    static Reply raw(String response) {
        return request -> response;
    }

    /** A valid {@code 101}, choosing {@code subprotocol} (none when {@code null}). */
    static Reply switching(String subprotocol) {
        return switchingWith(subprotocol == null ? "" : "Sec-WebSocket-Protocol: " + subprotocol + "\r\n");
    }

    /** A valid {@code 101} with extra raw header lines (each ending in CRLF). */
    static Reply switchingWith(String extraHeaderLines) {
        return request -> "HTTP/1.1 101 Switching Protocols\r\n"
                + "Upgrade: websocket\r\n"
                + "Connection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: " + RawFrames.accept(request.header("Sec-WebSocket-Key")) + "\r\n"
                + extraHeaderLines
                + "\r\n";
    }

    void release() {
        gate.countDown();
    }

    int port() {
        return server.getLocalPort();
    }

    URI uri() {
        return URI.create((server instanceof SSLServerSocket ? "wss" : "ws") + "://127.0.0.1:" + port());
    }

    Backend backend() {
        return Backend.of(uri());
    }

    Request nextRequest() throws InterruptedException {
        Request request = requests.poll(10, TimeUnit.SECONDS);
        if (request == null) {
            throw new AssertionError("raw backend saw no request");
        }
        return request;
    }

    /** How the next connection ended; fails after {@code seconds}. */
    String nextEnd(long seconds) throws InterruptedException {
        String end = ends.poll(seconds, TimeUnit.SECONDS);
        if (end == null) {
            throw new AssertionError("the proxy did not close its backend connection within " + seconds + " s");
        }
        return end;
    }

    /** The body of the next request a {@link #readingBodies} backend read; fails after 10 s. */
    String nextBody() throws InterruptedException {
        String body = bodies.poll(10, TimeUnit.SECONDS);
        if (body == null) {
            throw new AssertionError("raw backend read no request body");
        }
        return body;
    }

    int openConnections() {
        return open.size();
    }

    private void acceptLoop() {
        while (!server.isClosed()) {
            try {
                Socket socket = server.accept();
                connections.incrementAndGet();
                open.add(socket);
                mostOpen.accumulateAndGet(open.size(), Math::max);
                Thread handler = new Thread(() -> serve(socket), "raw-backend-conn-" + socket.getPort());
                handler.setDaemon(true);
                handler.start();
            } catch (IOException e) {
                return; // closed
            }
        }
    }

    private void serve(Socket socket) {
        String end = "eof";
        try (socket) {
            socket.setTcpNoDelay(true);
            InputStream in = new BufferedInputStream(socket.getInputStream());
            OutputStream out = socket.getOutputStream();
            String head = readHead(in);
            if (head == null) {
                return;
            }
            Request request = new Request(head);
            requests.add(request);
            if (readsBodies) {
                if ("100-continue".equalsIgnoreCase(request.header("Expect"))) {
                    out.write((beforeContinue + "HTTP/1.1 100 Continue\r\n\r\n")
                            .getBytes(StandardCharsets.ISO_8859_1));
                    out.flush();
                }
                bodies.add(readBody(in, request));
            }
            in = awaitGate(socket, in);
            String response = reply.response(request);
            if (response != null) {
                out.write(response.getBytes(StandardCharsets.ISO_8859_1));
                out.flush();
            }
            if (closeAfterReply) {
                return;
            }
            if (response != null && response.startsWith("HTTP/1.1 101")) {
                afterUpgrade.run(socket, out);
                end = speakWebSocket(in, out);
            } else {
                // Nothing more should come on this connection: record whatever does, until the proxy closes it.
                String next;
                while ((next = readHead(in, true)) != null) {
                    requests.add(new Request(next));
                }
            }
        } catch (EOFException e) {
            end = "eof";
        } catch (SocketException e) {
            end = server.isClosed() ? "backend closed" : "reset";
        } catch (IOException | InterruptedException e) {
            end = "error: " + e;
        } finally {
            open.remove(socket);
            ends.add(end);
        }
    }

    /**
     * Waits for the gate while reading what the proxy sends meanwhile (a socket read timeout of 10 ms lets it look at
     * the gate between reads), records it in {@link #beforeReply}, and returns the stream to go on with: those bytes
     * first, then the socket's. Once the proxy has closed the connection, it only waits.
     */
    private InputStream awaitGate(Socket socket, InputStream in) throws IOException, InterruptedException {
        if (gate.getCount() == 0) {
            return in;
        }
        ByteArrayOutputStream early = new ByteArrayOutputStream();
        int timeout = socket.getSoTimeout();
        socket.setSoTimeout(10);
        byte[] chunk = new byte[4096];
        try {
            while (gate.getCount() != 0) {
                int read;
                try {
                    read = in.read(chunk);
                } catch (SocketTimeoutException e) {
                    continue;
                }
                if (read == -1) {
                    gate.await();
                    break;
                }
                early.write(chunk, 0, read);
                beforeReply.add(Arrays.copyOf(chunk, read));
            }
        } finally {
            if (!socket.isClosed()) {
                socket.setSoTimeout(timeout);
            }
        }
        return early.size() == 0 ? in
                : new SequenceInputStream(new ByteArrayInputStream(early.toByteArray()), in);
    }

    private String speakWebSocket(InputStream in, OutputStream out) throws IOException {
        while (true) {
            RawFrames.Frame frame = RawFrames.read(in);
            frames.add(frame);
            if (frame.opcode() == RawFrames.CLOSE) {
                RawFrames.write(out, RawFrames.encode(RawFrames.CLOSE, frame.payload(), false));
                return "close:" + frame.closeCode();
            }
            if (echo && frame.fin() && (frame.opcode() == RawFrames.TEXT || frame.opcode() == RawFrames.BINARY)) {
                // A compressed frame (permessage-deflate agreed through the proxy) is echoed compressed.
                byte[] echoed = RawFrames.encode(frame.opcode(), frame.payload(), false);
                RawFrames.write(out, frame.rsv1() ? RawFrames.rsv1(echoed) : echoed);
            }
        }
    }

    /** Reads a request body framed by its {@code Content-Length} or chunked (no body when it has neither). */
    private static String readBody(InputStream in, Request request) throws IOException {
        String encoding = request.header("Transfer-Encoding");
        if (encoding != null && encoding.toLowerCase(Locale.ROOT).contains("chunked")) {
            ByteArrayOutputStream body = new ByteArrayOutputStream();
            while (true) {
                String sizeLine = readLine(in);
                int size = Integer.parseInt(sizeLine.split(";")[0].trim(), 16);
                if (size == 0) {
                    while (!readLine(in).isEmpty()) {
                        // Trailers are not needed.
                    }
                    return body.toString(StandardCharsets.UTF_8);
                }
                body.write(in.readNBytes(size));
                readLine(in);
            }
        }
        String length = request.header("Content-Length");
        return length == null ? "" : new String(in.readNBytes(Integer.parseInt(length)), StandardCharsets.UTF_8);
    }

    private static String readLine(InputStream in) throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        int b;
        while ((b = in.read()) != '\n') {
            if (b == -1) {
                throw new EOFException("end of stream in a chunked body");
            }
            if (b != '\r') {
                line.write(b);
            }
        }
        return line.toString(StandardCharsets.ISO_8859_1);
    }

    private static String readHead(InputStream in) throws IOException {
        return readHead(in, false);
    }

    /** A request head; at the end of the stream {@code null}, or with {@code partial} the bytes read, if any. */
    private static String readHead(InputStream in, boolean partial) throws IOException {
        ByteArrayOutputStream head = new ByteArrayOutputStream();
        int matched = 0;
        int b;
        while ((b = in.read()) != -1) {
            head.write(b);
            matched = (b == '\r' && (matched == 0 || matched == 2)) || (b == '\n' && (matched == 1 || matched == 3))
                    ? matched + 1 : (b == '\r' ? 1 : 0);
            if (matched == 4) {
                return head.toString(StandardCharsets.ISO_8859_1);
            }
        }
        return partial && head.size() > 0 ? head.toString(StandardCharsets.ISO_8859_1) : null;
    }

    @Override
    public void close() throws IOException {
        release();
        server.close();
        for (Socket socket : open) {
            socket.close();
        }
    }
}
