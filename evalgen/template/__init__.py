"""The files of a new plugin package, written by ``evalgen new-plugin NAME``.

Each ``*.tmpl`` file here is a `string.Template` (``${name}`` is the family name, ``${package}``
the import package, ``${distribution}`` the distribution, ``${evalgen_version}`` the version of
evalgen that wrote it; ``$$`` is a literal ``$``);
`evalgen.new_plugin.TEMPLATE_FILES` says where each one goes in the new package.
"""
