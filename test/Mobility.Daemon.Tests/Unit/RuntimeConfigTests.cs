using System.Text.Json;

namespace Mobility.Daemon.Tests.Unit;

/// <summary>
/// The runtime settings mobilityd starts with, read from the mobilityd.runtimeconfig.json the build
/// copies beside these tests (what the runtime itself reads at start).
/// </summary>
public sealed class RuntimeConfigTests
{
    [Fact]
    public void Mobilityd_runs_workstation_concurrent_gc()
    {
        // The web SDK turns server GC on unless ServerGarbageCollection says otherwise; a misspelt
        // property (ServerGarbageCollector) is silently ignored and left server GC on.
        var path = Path.Combine(AppContext.BaseDirectory, "mobilityd.runtimeconfig.json");
        using var config = JsonDocument.Parse(File.ReadAllText(path));
        var properties = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");

        Assert.False(properties.GetProperty("System.GC.Server").GetBoolean());
        Assert.True(properties.GetProperty("System.GC.Concurrent").GetBoolean());
    }
}
