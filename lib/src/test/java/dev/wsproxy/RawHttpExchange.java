package dev.wsproxy;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;

/** One handcrafted HTTP/1.1 request on a bare socket, and the response head as text. */
final class RawHttpExchange implements AutoCloseable {

    private final Socket socket;
    private final String head;

    private RawHttpExchange(Socket socket, String head) {
        this.socket = socket;
        this.head = head;
    }

    /** Sends a valid WebSocket upgrade request for {@code path} and reads the response head. */
    static RawHttpExchange upgrade(int port, String path) throws IOException {
        return send(port, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + port
                + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13"
                + "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    }

    static RawHttpExchange send(int port, String request) throws IOException {
        return send(port, request, null);
    }

    /** Sends from a given loopback source address (127.0.0.2, ...), to play several clients on one machine. */
    static RawHttpExchange upgradeFrom(String localAddress, int port, String path, String... extraHeaders)
            throws IOException {
        StringBuilder request = new StringBuilder("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" + port
                + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13"
                + "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
        for (String header : extraHeaders) {
            request.append(header).append("\r\n");
        }
        return send(port, request.append("\r\n").toString(), localAddress);
    }

    static RawHttpExchange send(int port, String request, String localAddress) throws IOException {
        Socket socket = new Socket();
        if (localAddress != null) {
            socket.bind(new InetSocketAddress(localAddress, 0));
        }
        socket.setSoTimeout(10_000);
        socket.connect(new InetSocketAddress("127.0.0.1", port), 5_000);
        socket.getOutputStream().write(request.getBytes(StandardCharsets.ISO_8859_1));
        socket.getOutputStream().flush();
        InputStream in = socket.getInputStream();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        int matched = 0;
        while (matched < 4) {
            int b = in.read();
            if (b < 0) {
                break;
            }
            bytes.write(b);
            matched = (b == '\r' && (matched == 0 || matched == 2)) || (b == '\n' && (matched == 1 || matched == 3))
                    ? matched + 1 : 0;
        }
        return new RawHttpExchange(socket, bytes.toString(StandardCharsets.ISO_8859_1));
    }

    String statusLine() {
        int end = head.indexOf("\r\n");
        return end < 0 ? head : head.substring(0, end);
    }

    String head() {
        return head;
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
