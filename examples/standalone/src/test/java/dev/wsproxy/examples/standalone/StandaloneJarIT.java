package dev.wsproxy.examples.standalone;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;

/**
 * The launcher contract, run as {@code java -jar target/wsproxy-standalone.jar}: catches a jar missing a class or a
 * service file. Run by the failsafe plugin after {@code package}.
 */
class StandaloneJarIT extends LauncherProcessContract {

    @Override
    List<String> launcherCommand() {
        Path jar = Paths.get(System.getProperty("wsproxy.example.jar", "target/wsproxy-standalone.jar"));
        assertThat(jar).isRegularFile();
        return List.of(java(), "-jar", jar.toString());
    }
}
