namespace VideoMatch.Tests;

/// <summary>Runs only where the project's shared data (../shared) is present; skips with a message elsewhere.</summary>
public sealed class SharedDataFactAttribute : FactAttribute
{
    public SharedDataFactAttribute(string relativePath)
    {
        if (SharedData.Find(relativePath) is null)
        {
            Skip = $"../shared/{relativePath} is absent; this test needs the project's shared data beside the checkout.";
        }
    }
}

/// <summary>A theory that runs only where the project's shared data is present; skips with a message elsewhere.</summary>
public sealed class SharedDataTheoryAttribute : TheoryAttribute
{
    public SharedDataTheoryAttribute(string relativePath)
    {
        if (SharedData.Find(relativePath) is null)
        {
            Skip = $"../shared/{relativePath} is absent; this test needs the project's shared data beside the checkout.";
        }
    }
}

internal static class SharedData
{
    public static string? Find(string relativePath)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "VideoMatch.sln")))
            {
                var path = Path.Combine(dir.FullName, "..", "shared", relativePath);
                return File.Exists(path) ? Path.GetFullPath(path) : null;
            }
        }

        return null;
    }

    /// <summary>The full path of a shared folder, or null when it is absent.</summary>
    public static string? FindFolder(string relativePath)
    {
        var marker = Find(Path.Combine(relativePath, "SOURCE.md"));
        return marker is null ? null : Path.GetDirectoryName(marker);
    }
}
