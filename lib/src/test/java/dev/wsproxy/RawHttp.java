package dev.wsproxy;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A raw HTTP/1.1 client on a plain {@link Socket}: writes a handcrafted request byte for byte and reads the status
 * line, headers and body back, so that tests see exactly what went over the wire (Jetty's and the JDK's clients would
 * normalise or refuse much of what a hostile client can send). After a {@code 101} it speaks masked frames.
 */
final class RawHttp implements AutoCloseable {

    /** How long any single read may block before the test fails instead of hanging. */
    private static final int READ_TIMEOUT_MS = 10_000;

    /** A handcrafted request: request line, headers in order (duplicates allowed) and an optional body. */
    static final class Request {
        private String method = "GET";
        private final String target;
        private String version = "HTTP/1.1";
        private final List<String[]> headers = new ArrayList<>();
        private byte[] body = new byte[0];

        private Request(String target) {
            this.target = target;
        }

        /** A valid RFC 6455 upgrade request with the RFC's sample key. */
        static Request upgrade(String target, String host) {
            return new Request(target)
                    .add("Host", host)
                    .add("Upgrade", "websocket")
                    .add("Connection", "Upgrade")
                    .add("Sec-WebSocket-Key", RawFrames.SAMPLE_KEY)
                    .add("Sec-WebSocket-Version", "13");
        }

        /** A plain request with only a {@code Host} header. */
        static Request plain(String method, String target, String host) {
            return new Request(target).method(method).add("Host", host);
        }

        Request method(String method) {
            this.method = method;
            return this;
        }

        Request version(String version) {
            this.version = version;
            return this;
        }

        /** Adds a header line, keeping any with the same name. */
        Request add(String name, String value) {
            headers.add(new String[] {name, value});
            return this;
        }

        /** Replaces every header line with this name by one line. */
        Request set(String name, String value) {
            return remove(name).add(name, value);
        }

        Request remove(String name) {
            headers.removeIf(h -> h[0].equalsIgnoreCase(name));
            return this;
        }

        /** Sets the raw body bytes; framing headers are the caller's business. */
        Request body(String body) {
            this.body = body.getBytes(StandardCharsets.UTF_8);
            return this;
        }

        byte[] bytes() {
            StringBuilder head = new StringBuilder();
            head.append(method).append(' ').append(target).append(' ').append(version).append("\r\n");
            for (String[] header : headers) {
                head.append(header[0]).append(": ").append(header[1]).append("\r\n");
            }
            head.append("\r\n");
            byte[] headBytes = head.toString().getBytes(StandardCharsets.ISO_8859_1);
            byte[] all = new byte[headBytes.length + body.length];
            System.arraycopy(headBytes, 0, all, 0, headBytes.length);
            System.arraycopy(body, 0, all, headBytes.length, body.length);
            return all;
        }

        @Override
        public String toString() {
            return new String(bytes(), StandardCharsets.ISO_8859_1);
        }
    }

    /** A response as read from the wire. */
    record Response(int status, String statusLine, List<String[]> headerLines, byte[] body) {

        /** Every value of the header, joined with {@code ", "}, or {@code null} when absent. */
        String header(String name) {
            List<String> values = new ArrayList<>();
            for (String[] line : headerLines) {
                if (line[0].equalsIgnoreCase(name)) {
                    values.add(line[1]);
                }
            }
            return values.isEmpty() ? null : String.join(", ", values);
        }

        String bodyText() {
            return new String(body, StandardCharsets.UTF_8);
        }

        @Override
        public String toString() {
            StringBuilder text = new StringBuilder(statusLine);
            for (String[] line : headerLines) {
                text.append(" | ").append(line[0]).append(": ").append(line[1]);
            }
            return text.append(" | body: ").append(bodyText()).toString();
        }
    }

    private final Socket socket;
    private final InputStream in;
    private final OutputStream out;

    private RawHttp(Socket socket) throws IOException {
        this.socket = socket;
        socket.setSoTimeout(READ_TIMEOUT_MS);
        socket.setTcpNoDelay(true);
        this.in = new BufferedInputStream(socket.getInputStream());
        this.out = socket.getOutputStream();
    }

    /** Speaks over a socket of the caller's, a TLS one for instance. */
    static RawHttp over(Socket socket) throws IOException {
        return new RawHttp(socket);
    }

    static RawHttp connect(WebSocketProxy proxy) throws IOException {
        URI uri = proxy.uri();
        return new RawHttp(new Socket(uri.getHost(), uri.getPort()));
    }

    /** The {@code host:port} a browser would send in {@code Host} for this proxy. */
    static String host(WebSocketProxy proxy) {
        return proxy.uri().getRawAuthority();
    }

    /** Sends the request and reads one response. */
    Response exchange(Request request) throws IOException {
        send(request.bytes());
        return readResponse();
    }

    void send(Request request) throws IOException {
        send(request.bytes());
    }

    void send(byte[] bytes) throws IOException {
        out.write(bytes);
        out.flush();
    }

    void send(String text) throws IOException {
        send(text.getBytes(StandardCharsets.ISO_8859_1));
    }

    Response readResponse() throws IOException {
        String statusLine = readLine();
        if (statusLine == null) {
            throw new EOFException("connection closed before any response");
        }
        String[] parts = statusLine.split(" ", 3);
        int status = Integer.parseInt(parts[1]);
        List<String[]> headers = new ArrayList<>();
        String line;
        while ((line = readLine()) != null && !line.isEmpty()) {
            int colon = line.indexOf(':');
            headers.add(new String[] {line.substring(0, colon).trim(), line.substring(colon + 1).trim()});
        }
        Response head = new Response(status, statusLine, headers, new byte[0]);
        byte[] body;
        String length = head.header("Content-Length");
        String encoding = head.header("Transfer-Encoding");
        if (status == 101 || status == 204 || status == 304 || (status >= 100 && status < 200)) {
            body = new byte[0];
        } else if (encoding != null && encoding.toLowerCase(Locale.ROOT).contains("chunked")) {
            body = readChunked();
        } else if (length != null) {
            body = in.readNBytes(Integer.parseInt(length.trim()));
        } else {
            body = in.readAllBytes();
        }
        return new Response(status, statusLine, headers, body);
    }

    private byte[] readChunked() throws IOException {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        while (true) {
            String sizeLine = readLine();
            int size = Integer.parseInt(sizeLine.split(";")[0].trim(), 16);
            if (size == 0) {
                String trailer;
                while ((trailer = readLine()) != null && !trailer.isEmpty()) {
                    // Trailers are not needed by these tests.
                }
                return body.toByteArray();
            }
            body.write(in.readNBytes(size));
            readLine();
        }
    }

    /** Reads a CRLF-terminated line, or {@code null} at the end of the stream. */
    private String readLine() throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        int b;
        while ((b = in.read()) != -1) {
            if (b == '\n') {
                byte[] bytes = line.toByteArray();
                int end = bytes.length > 0 && bytes[bytes.length - 1] == '\r' ? bytes.length - 1 : bytes.length;
                return new String(bytes, 0, end, StandardCharsets.ISO_8859_1);
            }
            line.write(b);
        }
        return line.size() == 0 ? null : new String(line.toByteArray(), StandardCharsets.ISO_8859_1);
    }

    /**
     * Tells whether the peer closed the connection within {@code timeout} without sending anything more; fails if
     * bytes arrive (a second response, say).
     */
    boolean closedWithin(Duration timeout) throws IOException {
        socket.setSoTimeout((int) timeout.toMillis());
        try {
            int b = in.read();
            if (b != -1) {
                byte[] rest = in.readNBytes(Math.min(in.available(), 4096));
                throw new AssertionError("expected the connection to close, got more bytes: "
                        + (char) b + new String(rest, StandardCharsets.ISO_8859_1));
            }
            return true;
        } catch (SocketTimeoutException e) {
            return false;
        } catch (SocketException e) {
            return true; // reset by the peer: closed as well
        } finally {
            if (!socket.isClosed()) {
                socket.setSoTimeout(READ_TIMEOUT_MS);
            }
        }
    }

    /** Asserts that no byte arrives and the connection stays open for {@code quiet}. */
    void assertNothingWithin(Duration quiet) throws IOException {
        socket.setSoTimeout((int) quiet.toMillis());
        try {
            int b = in.read();
            throw new AssertionError(b == -1 ? "connection closed early" : "unexpected byte: " + (char) b);
        } catch (SocketTimeoutException expected) {
            // Nothing arrived: what we wanted.
        } finally {
            socket.setSoTimeout(READ_TIMEOUT_MS);
        }
    }

    void sendText(String text) throws IOException {
        send(RawFrames.text(text, true));
    }

    RawFrames.Frame readFrame() throws IOException {
        return RawFrames.read(in);
    }

    /** Sends a close frame and returns the close frame the server answers with, skipping data frames before it. */
    RawFrames.Frame closeHandshake(int code, String reason) throws IOException {
        send(RawFrames.close(code, reason, true));
        while (true) {
            RawFrames.Frame frame = readFrame();
            if (frame.opcode() == RawFrames.CLOSE) {
                return frame;
            }
        }
    }

    /** Sends a FIN and keeps reading: a client that half-closes its connection. */
    void shutdownOutput() throws IOException {
        socket.shutdownOutput();
    }

    /** Drops the connection with a TCP reset instead of a FIN. */
    void reset() throws IOException {
        socket.setSoLinger(true, 0);
        socket.close();
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
