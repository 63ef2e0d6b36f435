package dev.wsproxy.examples.chat;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Runs {@code target/wsproxy-chat.jar} with {@code java -jar}, as the README says, so that a jar missing a class, a
 * service file or the page fails {@code mvn verify}. Run by the failsafe plugin after {@code package}.
 */
class ChatJarIT {

    private static final Pattern READY = Pattern.compile("Chat demo ready: open (http://127\\.0\\.0\\.1:\\d+/) in a browser");

    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private Process process;

    @AfterEach
    void stopProcess() throws InterruptedException {
        if (process != null && process.isAlive()) {
            process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void runnableJarServesThePageAndTheChat(@TempDir Path dir) throws Exception {
        Path jar = Paths.get(System.getProperty("wsproxy.example.jar", "target/wsproxy-chat.jar"));
        assertThat(jar).isRegularFile();
        Path stderr = dir.resolve("stderr.txt");
        String java = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
        process = new ProcessBuilder(java, "-jar", jar.toString(), "0")
                .redirectError(stderr.toFile())
                .start();
        BufferedReader stdout = new BufferedReader(new InputStreamReader(process.getInputStream(), UTF_8));

        CompletableFuture<String> firstLine = CompletableFuture.supplyAsync(() -> readLine(stdout));
        assertThat(firstLine).as("stderr: %s", (Object) stderr).succeedsWithin(Duration.ofSeconds(20));
        Matcher ready = READY.matcher(firstLine.join());
        assertThat(ready.matches()).as("first line '%s'", firstLine.join()).isTrue();
        URI uri = URI.create(ready.group(1));

        HttpResponse<String> page = http.send(HttpRequest.newBuilder(uri).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(page.statusCode()).isEqualTo(200);
        assertThat(page.body()).contains("<main id=\"chat\">");

        WebSocketRecorder recorder = new WebSocketRecorder();
        WebSocket socket = http.newWebSocketBuilder()
                .buildAsync(URI.create("ws://" + uri.getAuthority() + "/ws/chat?nick=jar"), recorder)
                .get(5, TimeUnit.SECONDS);
        assertThat(recorder.nextEvent()).isEqualTo("{\"type\":\"join\",\"nick\":\"jar\",\"online\":1}");
        socket.sendText("from the jar", true).get(5, TimeUnit.SECONDS);
        assertThat(recorder.nextEvent()).isEqualTo("{\"type\":\"message\",\"nick\":\"jar\",\"text\":\"from the jar\"}");

        process.destroy();
        assertThat(recorder.awaitClose()).isEqualTo(1001);
        assertThat(process.waitFor(15, TimeUnit.SECONDS)).as("exits after SIGTERM").isTrue();
        assertThat(Files.readString(stderr)).doesNotContain("Exception");
    }

    private static String readLine(BufferedReader reader) {
        try {
            String line = reader.readLine();
            return line == null ? "<end of stdout>" : line;
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
