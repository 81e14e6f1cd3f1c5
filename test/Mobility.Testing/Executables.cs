namespace Mobility.Testing;

/// <summary>
/// Finds the dll of one of the repository's executables (gns, mobilityd, mob) for <see cref="TestProcess.Start"/>:
/// beside the tests when the test project references it, otherwise in the sibling output folder of
/// the same build (<c>--artifacts-path</c> layout <c>bin/&lt;Project&gt;/&lt;config&gt;/</c>, or the
/// classic <c>src/&lt;Project&gt;/bin/&lt;Config&gt;/&lt;tfm&gt;/</c>).
/// </summary>
public static class Executables
{
    /// <summary>
    /// The name to give <see cref="TestProcess.Start"/>: the bare assembly name when it is beside the
    /// tests, else the absolute path without ".dll" (which <see cref="TestProcess.AssemblyPath"/> accepts,
    /// since combining with an absolute path yields that path).
    /// </summary>
    public static string Locate(string assemblyName, string project)
    {
        var full = Path.Combine(AppContext.BaseDirectory, assemblyName + ".dll");
        if (File.Exists(full))
        {
            return assemblyName;
        }

        var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var candidates = new List<string>
        {
            // artifacts layout: bin/<test project>/release/ -> bin/<project>/release/
            Path.Combine(here.Parent!.Parent!.FullName, project, here.Name, assemblyName + ".dll"),
        };
        if (here.Parent?.Parent?.Parent?.Parent?.Parent is { } repo)
        {
            // classic layout: test/<test project>/bin/Release/net10.0/ -> src/<project>/bin/Release/net10.0/
            candidates.Add(Path.Combine(repo.FullName, "src", project, "bin", here.Parent!.Name, here.Name, assemblyName + ".dll"));
        }

        foreach (var candidate in candidates)
        {
            if (File.Exists(candidate))
            {
                return Path.GetFullPath(candidate)[..^".dll".Length];
            }
        }

        throw new FileNotFoundException(
            $"{assemblyName}.dll was found neither beside the tests nor at {string.Join(" or ", candidates)}; build src/{project} " +
            $"with the same configuration (and artifacts path), or reference it from the test project.");
    }
}
