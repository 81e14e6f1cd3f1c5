namespace Mobility.Netlab.Processes;

/// <summary>
/// Finds the real executables the mobility system runs: <c>gns</c> (Mobility.Gns.Host), <c>mobilityd</c>
/// (Mobility.Daemon.Host), <c>mob</c> (Mobility.Cli) and <c>mobility-relay</c> (Mobility.Relay.Host). Per executable, an
/// environment variable wins (<c>NETLAB_GNS</c>, <c>NETLAB_MOBILITYD</c>, <c>NETLAB_MOB</c>, <c>NETLAB_RELAY</c>: a .dll or an executable); otherwise the .dll is looked
/// for beside this assembly, in the artifacts layout (<c>bin/&lt;project&gt;/&lt;config&gt;/</c>, a sibling of this output)
/// and in the classic layout (<c>src/&lt;project&gt;/bin/&lt;Config&gt;/&lt;tfm&gt;/</c>). The netlab tool and the tests build
/// the four projects (ProjectReference with ReferenceOutputAssembly=false), so both find them.
/// </summary>
public static class MobilityExecutables
{
    public static (string FileName, IReadOnlyList<string> Prefix) Gns() => Command("NETLAB_GNS", "Mobility.Gns.Host", "gns");

    public static (string FileName, IReadOnlyList<string> Prefix) Mobilityd() => Command("NETLAB_MOBILITYD", "Mobility.Daemon.Host", "mobilityd");

    public static (string FileName, IReadOnlyList<string> Prefix) Mob() => Command("NETLAB_MOB", "Mobility.Cli", "mob");

    public static (string FileName, IReadOnlyList<string> Prefix) Relay() => Command("NETLAB_RELAY", "Mobility.Relay.Host", "mobility-relay");

    /// <summary>The path of <paramref name="assembly"/>.dll (or the configured file); throws with every place tried.</summary>
    public static string Locate(string variable, string project, string assembly)
    {
        if (System.Environment.GetEnvironmentVariable(variable) is { Length: > 0 } configured)
        {
            return File.Exists(configured) ? Path.GetFullPath(configured) : throw new FileNotFoundException($"${variable} names '{configured}', which does not exist", configured);
        }

        var candidates = Candidates(new DirectoryInfo(AppContext.BaseDirectory), project, assembly + ".dll").Select(Path.GetFullPath).ToList();
        return candidates.FirstOrDefault(File.Exists)
            ?? throw new FileNotFoundException($"{assembly}.dll not found (tried {string.Join(", ", candidates)}); build src/{project} or set ${variable}");
    }

    internal static IEnumerable<string> Candidates(DirectoryInfo here, string project, string file)
    {
        yield return Path.Combine(here.FullName, file);
        // --artifacts-path: <artifacts>/bin/<this project>/<config>/ -> <artifacts>/bin/<project>/<config>/
        yield return Path.Combine(here.FullName, "..", "..", project, here.Name, file);
        if (here.Parent is { } configuration)
        {
            // Classic: <repo>/{src,test}/<this project>/bin/<Config>/<tfm>/ -> <repo>/src/<project>/bin/<Config>/<tfm>/
            yield return Path.Combine(here.FullName, "..", "..", "..", "..", "..", "src", project, "bin", configuration.Name, here.Name, file);
        }
    }

    private static (string FileName, IReadOnlyList<string> Prefix) Command(string variable, string project, string assembly)
    {
        var path = Locate(variable, project, assembly);
        return path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? (Emulation.NetlabTool.DotnetHost(), [path]) : (path, []);
    }
}
