namespace Mobility.Netlab.Emulation;

/// <summary>
/// Finds the <c>netlab</c> tool (Mobility.Netlab.Tool) that runs the link emulator as its own process:
/// <c>NETLAB_TOOL</c> (a .dll or an executable) wins, else <c>netlab.dll</c> next to this assembly.
/// </summary>
public static class NetlabTool
{
    public static (string FileName, IReadOnlyList<string> Prefix) Command()
    {
        var configured = System.Environment.GetEnvironmentVariable("NETLAB_TOOL");
        var path = !string.IsNullOrEmpty(configured) ? configured : Path.Combine(AppContext.BaseDirectory, "netlab.dll");
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"the netlab tool was not found at {path}; build src/Mobility.Netlab.Tool or set NETLAB_TOOL", path);
        }

        if (!path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase))
        {
            return (path, []);
        }

        return (DotnetHost(), [path]);
    }

    internal static string DotnetHost()
    {
        var hostPath = System.Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(hostPath) && File.Exists(hostPath))
        {
            return hostPath;
        }

        var self = System.Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            return self;
        }

        var root = System.Environment.GetEnvironmentVariable("DOTNET_ROOT");
        if (!string.IsNullOrEmpty(root) && File.Exists(Path.Combine(root, "dotnet")))
        {
            return Path.Combine(root, "dotnet");
        }

        return "dotnet";
    }
}
