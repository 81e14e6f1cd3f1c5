using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Mobility.Architecture.Tests;

/// <summary>One reference of a project file: to another project of the repository.</summary>
/// <param name="Target">The referenced project's name (its file name without .csproj).</param>
/// <param name="BuildOnly">ReferenceOutputAssembly="false": built first (an executable copied beside), not compiled against.</param>
public sealed record ProjectReference(string Target, bool BuildOnly);

/// <summary>A project of the repository: its name, its top folder (src, bench or test) and its references.</summary>
public sealed record ProjectNode(string Name, string Folder, IReadOnlyList<ProjectReference> References)
{
    /// <summary>The references compiled against (build-only references left out).</summary>
    public IEnumerable<string> CodeReferences => References.Where(r => !r.BuildOnly).Select(r => r.Target);
}

/// <summary>The project files of the repository as they are on disk: every *.csproj under src/, bench/, test/ and fuzz/.</summary>
public sealed class ProjectGraph
{
    public static readonly string[] Folders = ["src", "bench", "test", "fuzz"];

    public ProjectGraph(IEnumerable<ProjectNode> projects) => Projects = projects.ToDictionary(p => p.Name, StringComparer.Ordinal);

    public IReadOnlyDictionary<string, ProjectNode> Projects { get; }

    /// <summary>The repository root: the first folder up from the test's output that holds Mobility.sln.</summary>
    public static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Mobility.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No Mobility.sln above {AppContext.BaseDirectory}.");
    }

    public static ProjectGraph Load(string root)
    {
        var projects = new List<ProjectNode>();
        foreach (var folder in Folders)
        {
            var path = Path.Combine(root, folder);
            if (!Directory.Exists(path))
            {
                continue;
            }

            foreach (var file in Directory.EnumerateFiles(path, "*.csproj", SearchOption.AllDirectories)
                         .Where(f => !f.Contains("/obj/", StringComparison.Ordinal) && !f.Contains("/bin/", StringComparison.Ordinal))
                         .Order(StringComparer.Ordinal))
            {
                projects.Add(Parse(file, folder));
            }
        }

        return new ProjectGraph(projects);
    }

    public static ProjectNode Parse(string file, string folder)
    {
        var document = XDocument.Load(file);
        var references = document.Descendants()
            .Where(e => e.Name.LocalName == "ProjectReference")
            .Select(e => new ProjectReference(
                Path.GetFileNameWithoutExtension(((string?)e.Attribute("Include") ?? "").Replace('\\', '/')),
                string.Equals((string?)e.Attribute("ReferenceOutputAssembly"), "false", StringComparison.OrdinalIgnoreCase)))
            .ToArray();
        return new ProjectNode(Path.GetFileNameWithoutExtension(file), folder, references);
    }

    /// <summary>The project names listed in a solution file.</summary>
    public static IReadOnlySet<string> SolutionProjects(string solutionFile)
        => Regex.Matches(File.ReadAllText(solutionFile), @"""([^""\\]+\\)*(?<name>[^""\\]+)\.csproj""")
            .Select(m => m.Groups["name"].Value)
            .ToHashSet(StringComparer.Ordinal);

    /// <summary>
    /// The edges <c>A --&gt; B</c> of the first <c>```mermaid</c> block of a Markdown file, as project names:
    /// a node id is the project name without "Mobility." and with '_' for '.' (<c>Daemon_Client</c> is Mobility.Daemon.Client).
    /// </summary>
    public static IReadOnlySet<(string From, string To)> MermaidEdges(string markdownFile)
    {
        var text = File.ReadAllText(markdownFile);
        var start = text.IndexOf("```mermaid", StringComparison.Ordinal);
        if (start < 0)
        {
            return new HashSet<(string, string)>();
        }

        var end = text.IndexOf("```", start + 10, StringComparison.Ordinal);
        var block = text[start..(end < 0 ? text.Length : end)];
        return Regex.Matches(block, @"^\s*(?<from>\w+)\s*-->\s*(?<to>\w+)\s*$", RegexOptions.Multiline)
            .Select(m => (ProjectOf(m.Groups["from"].Value), ProjectOf(m.Groups["to"].Value)))
            .ToHashSet();
    }

    private static string ProjectOf(string mermaidId) => "Mobility." + mermaidId.Replace('_', '.');
}
