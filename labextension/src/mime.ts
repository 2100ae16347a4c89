/**
 * The MIME renderer extension for `application/vnd.direng.graph+json`: notebook outputs
 * (and any other rendermime user) draw DirEng graphs interactively. Ranked before HTML, so
 * a bundle that also carries the offline HTML/text views shows this one in JupyterLab.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';

import { config } from './config';
import { GRAPH_MIME_TYPE } from './graphModel';
import { GraphView } from './graphView';

export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [GRAPH_MIME_TYPE],
  defaultRank: 0,
  createRenderer: () => new GraphView({ config })
};

const extension: IRenderMime.IExtension = {
  id: 'direng-workbench:graph-renderer',
  description: 'Renders DirEng graphs (application/vnd.direng.graph+json) with cytoscape.',
  rendererFactory,
  rank: 0,
  dataType: 'json'
};

export default extension;
