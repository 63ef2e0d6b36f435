package dev.wsproxy.examples.standalone;

import java.util.List;

/** The launcher contract, run as {@code java -cp <test class path> dev.wsproxy.examples.standalone.Main}. */
class StandaloneProcessTest extends LauncherProcessContract {

    @Override
    List<String> launcherCommand() {
        return List.of(java(), "-cp", System.getProperty("java.class.path"), Main.class.getName());
    }
}
